// Checks that the code shown in the documentation is the code the build compiles: every
// ```cpp block preceded by a line "<!-- compiled: PATH -->" must equal the file PATH (minus
// the file's leading // comment lines and the blank lines after them). And every table
// preceded by a line "<!-- rows compiled: PATH -->" must match the "// row: CELL" lines of
// PATH, which the build compiles: each row's first cell has such a line, and each such line
// is still the first cell of a row. "<!-- rows compiled: PATH#TAG -->" does the same with
// "// TAG: CELL" lines, so that one file can keep two tables honest.
//
//   doc_snippets ROOT DOC.md [DOC.md ...]
#include <fstream>
#include <iostream>
#include <set>
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

// The first cells of the table that starts after `from` (its header row and rule left out).
std::set<std::string> table_rows(const std::string& doc, std::size_t from) {
    std::set<std::string> rows;
    std::size_t line = doc.find("\n|", from);
    if (line == std::string::npos) return rows;
    for (int row = 0; line + 1 < doc.size() && doc[line + 1] == '|'; ++row) {
        const std::size_t start = line + 1;
        line = doc.find('\n', start);
        if (line == std::string::npos) line = doc.size();
        if (row < 2) continue; // the header and the |---| rule
        const std::size_t cell_end = doc.find(" |", start + 1);
        if (cell_end < line) rows.insert(doc.substr(start + 2, cell_end - start - 2));
    }
    return rows;
}

// The cells named by "// TAG: CELL" lines in `source`.
std::set<std::string> row_lines(const std::string& source, const std::string& tag_name) {
    std::set<std::string> rows;
    std::istringstream in(source);
    const std::string tag = "// " + tag_name + ": ";
    for (std::string line; std::getline(in, line);) {
        const std::size_t at = line.find_first_not_of(' ');
        if (at != std::string::npos && line.compare(at, tag.size(), tag) == 0)
            rows.insert(line.substr(at + tag.size()));
    }
    return rows;
}

// Compares the table after `at` with the row lines of `path`; returns the mismatches.
int check_rows(const std::string& doc_name, const std::string& doc, std::size_t at,
               const std::string& path, const std::string& tag, const std::string& source) {
    const auto rows = table_rows(doc, at);
    const auto lines = row_lines(source, tag);
    int failed = rows.empty() ? 1 : 0;
    if (rows.empty()) std::cerr << doc_name << ": no table after the marker for " << path << '\n';
    for (const auto& row : rows)
        if (!lines.count(row)) {
            std::cerr << doc_name << ": the row " << row << " has no \"// " << tag << ": " << row
                      << "\" line in " << path << " that shows it compiles\n";
            ++failed;
        }
    for (const auto& line : lines)
        if (!rows.count(line)) {
            std::cerr << path << ": \"// " << tag << ": " << line
                      << "\" is not a row of the table in " << doc_name << '\n';
            ++failed;
        }
    return failed;
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
    const std::string rows_marker = "<!-- rows compiled: ";
    for (int i = 2; i < argc; ++i) {
        const std::string doc = read_file(argv[i]);
        for (std::size_t at = doc.find(rows_marker); at != std::string::npos;
             at = doc.find(rows_marker, at + 1)) {
            const std::size_t name_end = doc.find(" -->", at);
            std::string path =
                doc.substr(at + rows_marker.size(), name_end - at - rows_marker.size());
            std::string tag = "row";
            if (const std::size_t hash = path.find('#'); hash != std::string::npos) {
                tag = path.substr(hash + 1);
                path.erase(hash);
            }
            ++checked;
            if (check_rows(argv[i], doc, name_end, path, tag, read_file(root + "/" + path)) != 0)
                ++failed;
        }
    }
    std::cout << checked << " snippets checked, " << failed << " out of date\n";
    return failed == 0 && checked > 0 ? 0 : 1;
}
