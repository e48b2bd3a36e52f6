// Checks that the code shown in the documentation is the code the build compiles: every
// ```cpp block preceded by a line "<!-- compiled: PATH -->" must equal the file PATH (minus
// the file's leading // comment lines and the blank lines after them).
//
//   doc_snippets ROOT DOC.md [DOC.md ...]
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// The file as the documentation shows it: without its header comment.
std::string shown_part(const std::string& source) {
    std::size_t pos = 0;
    while (source.compare(pos, 2, "//") == 0)
        pos = source.find('\n', pos) + 1;
    while (pos < source.size() && source[pos] == '\n')
        ++pos;
    return source.substr(pos);
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::cerr << "usage: doc_snippets ROOT DOC.md...\n";
        return 2;
    }
    const std::string root = argv[1];
    const std::string marker = "<!-- compiled: ";
    int checked = 0;
    int failed = 0;
    for (int i = 2; i < argc; ++i) {
        const std::string doc = read_file(argv[i]);
        for (std::size_t at = doc.find(marker); at != std::string::npos;
             at = doc.find(marker, at + 1)) {
            const std::size_t name_end = doc.find(" -->", at);
            const std::string path = doc.substr(at + marker.size(), name_end - at - marker.size());
            const std::size_t open = doc.find("```cpp\n", name_end);
            const std::size_t body = open + 7;
            const std::size_t close = doc.find("\n```\n", body);
            if (open == std::string::npos || close == std::string::npos) {
                std::cerr << argv[i] << ": no ```cpp block after the marker for " << path << '\n';
                ++failed;
                continue;
            }
            ++checked;
            if (doc.substr(body, close + 1 - body) != shown_part(read_file(root + "/" + path))) {
                std::cerr << argv[i] << ": the block for " << path
                          << " differs from the file: copy the file into the document\n";
                ++failed;
            }
        }
    }
    std::cout << checked << " snippets checked, " << failed << " out of date\n";
    return failed == 0 && checked > 0 ? 0 : 1;
}
