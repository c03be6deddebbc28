// core/file_io.h: atomic writes, their error messages, and the temporaries they use.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/file_io.h"
#include "test_util.h"

using namespace focus;
namespace fs = std::filesystem;

TEST_SUITE("file_io") {
  TEST_CASE("write_file_atomic: replaces the file, or leaves it as it was and names path and reason") {
    focus::testing::TempDir dir("file_io_test");
    const std::string path = (dir / "a.txt");
    io::write_file_atomic(path, "test", "first");
    io::write_file_atomic(path, "test", "second");
    CHECK(focus::testing::read_file(path) == "second");
    // A producer that fails halfway: the old contents stay, no temporary is left.
    CHECK_THROWS_WITH_AS(io::write_file_atomic(path, "test",
                                               [](const io::WriteFn& write) {
                                                 write("par", 3);
                                                 FOCUS_FAIL("[test] the producer failed");
                                               }),
                         "[test] the producer failed", Error);
    CHECK(focus::testing::read_file(path) == "second");
    int files = 0;
    for (const auto& e : fs::directory_iterator(dir.path)) files += (e.path().filename() == "a.txt") ? 1 : 100;
    CHECK(files == 1);
    // Errors name the path and the system's reason.
    const std::string expected = "[test] cannot write '" + (dir / "missing/b.txt") + "': cannot create a temporary file in";
    CHECK_THROWS_WITH_AS(io::write_file_atomic((dir / "missing/b.txt"), "test", "x"), doctest::Contains(expected.c_str()),
                         Error);
    CHECK_THROWS_WITH_AS(io::write_file_atomic((dir / "missing/b.txt"), "test", "x"),
                         doctest::Contains("No such file or directory"), Error);
    fs::create_directories((dir / "adir/inner"));
    CHECK_THROWS_WITH_AS(io::write_file_atomic((dir / "adir"), "test", "x"), doctest::Contains("Is a directory"),
                         Error);
    CHECK_THROWS_WITH_AS(io::write_file_atomic("", "test", "x"), "[test] empty path", Error);
    CHECK(io::errno_text(ENOSPC) == "No space left on device");
  }

  TEST_CASE("is_temporary_name and remove_stale_temporaries") {
    CHECK(io::is_temporary_name(".checkpoint.safetensors.tmp.Ab12Cd"));
    CHECK(io::is_temporary_name(".a.tmp.XXXXXX"));
    CHECK_FALSE(io::is_temporary_name("checkpoint.safetensors.tmp.Ab12Cd"));  // not hidden: not ours
    CHECK_FALSE(io::is_temporary_name(".a.tmp.XXXXX"));                       // 5 characters
    CHECK_FALSE(io::is_temporary_name(".tmp.XXXXXX"));                        // no name
    CHECK_FALSE(io::is_temporary_name(".hidden"));
    focus::testing::TempDir dir("file_io_test");
    std::ofstream((dir / ".x.tmp.123456")) << "x";
    std::ofstream((dir / "keep.txt")) << "x";
    fs::create_directories((dir / ".sub.tmp.123456"));  // a directory: not a file we wrote
    const auto removed = io::remove_stale_temporaries(dir.path.string());
    REQUIRE(removed.size() == 1);
    CHECK(fs::path(removed[0]).filename() == ".x.tmp.123456");
    CHECK(fs::exists((dir / "keep.txt")));
    CHECK(fs::exists((dir / ".sub.tmp.123456")));
    CHECK(io::remove_stale_temporaries((dir / "nonexistent")).empty());
  }
}
