#include <doctest/doctest.h>
TEST_CASE("uid_map: placeholder") { CHECK(true); }
