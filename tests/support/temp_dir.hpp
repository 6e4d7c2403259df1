// A fresh temporary directory for a test (mkdtemp under the system temp directory),
// removed with everything in it when the object goes. Not copyable.
#pragma once

#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include <stdlib.h>

namespace vfolder_test {

struct temp_dir {
    std::string path;
    explicit temp_dir(std::string_view prefix = "vfolder") {
        std::string t = (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
        REQUIRE(::mkdtemp(t.data()) != nullptr);
        path = t;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    temp_dir(temp_dir const&) = delete;
    temp_dir& operator=(temp_dir const&) = delete;
};

} // namespace vfolder_test
