// The test runner's main(), for Catch2 2 and 3 alike. Besides running the tests it checks
// each test case for descriptor leaks: a descriptor open after a test case that was not open
// before it fails the run, naming the test and what the descriptor refers to.
#if CONET_CATCH2_MAJOR < 3
#define CATCH_CONFIG_RUNNER
#endif
#include <cstdio>
#include <map>
#include <string>

#include "catch.hpp"
#include "descriptor_check.hpp"

namespace {

bool leak_found = false;

#if CONET_CATCH2_MAJOR >= 3
using listener_base = Catch::EventListenerBase;
#else
using listener_base = Catch::TestEventListenerBase;
#endif

class descriptor_leak_check : public listener_base {
public:
    using listener_base::listener_base;

    void testCaseStarting(const Catch::TestCaseInfo& info) override {
        listener_base::testCaseStarting(info);
        name_ = std::string(info.name);
        before_ = conet_test::open_descriptors();
    }

    void testCaseEnded(const Catch::TestCaseStats& stats) override {
        const std::string leaked =
            conet_test::new_descriptors(before_, conet_test::open_descriptors());
        if (!leaked.empty()) {
            std::fprintf(stderr, "descriptor leak: test case \"%s\" left open %s\n", name_.c_str(),
                         leaked.c_str());
            leak_found = true;
        }
        listener_base::testCaseEnded(stats);
    }

private:
    std::string name_;
    std::map<int, std::string> before_;
};

} // namespace

CATCH_REGISTER_LISTENER(descriptor_leak_check)

int main(int argc, char** argv) {
    const int failures = Catch::Session().run(argc, argv);
    if (failures != 0) return failures;
    return leak_found ? 1 : 0;
}
