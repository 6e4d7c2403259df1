// Tests of vfolder::seq_range_set: the edge cases of every operation (the semantics of
// Dovecot's seq_range_array, minus its bugs), the whole-domain rule on paths that stay
// legal, the views, other storage and value types, and a randomized differential test
// against a std::set model. Precondition violations are tested in precondition_test.cpp.

// GCC 12 false positive: in a TU this large its -Wstringop-overflow sees a zero-sized
// destination in boost::container::vector's growth path inlined into
// seq_range_set::add (ASan finds nothing there). A small TU and Clang are clean.
#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic push
#  pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
#include <vfolder/core/seq_range_set.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic pop
#endif

#include "support/naive_model.hpp"

#include <boost/container/small_vector.hpp>
#include <doctest/doctest.h>
#include <range/v3/iterator/operations.hpp>
#include <range/v3/range/concepts.hpp>
#include <range/v3/range/conversion.hpp>
#include <range/v3/range/traits.hpp>
#include <range/v3/view/iota.hpp>
#include <range/v3/view/take.hpp>

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <list>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

using vfolder::seq_range;
using vfolder::seq_range_set;
using vfolder_test::format_ranges;
using vfolder_test::naive_set;

using set32 = seq_range_set<>;
using set8 = seq_range_set<std::uint8_t>;
using set16 = seq_range_set<std::uint16_t>;
using set64 = seq_range_set<std::uint64_t>;
using small_set32 =
    seq_range_set<std::uint32_t, boost::container::small_vector<seq_range<std::uint32_t>, 4>>;

constexpr std::uint32_t max32 = set32::max_value;
constexpr std::uint64_t max64 = set64::max_value;

// The set's ranges in Dovecot's notation ("[1-3],[5],[7-MAX]"), and its invariant.
#define CHECK_SET(s, expected)                                                           \
    do {                                                                                 \
        CHECK((s).check_invariants());                                                   \
        CHECK(format_ranges(s) == std::string(expected));                                \
    } while (false)

template <class Set>
std::vector<typename Set::value_type> values_of(Set const& s) {
    std::vector<typename Set::value_type> out;
    s.for_each_value([&](typename Set::value_type v) { out.push_back(v); });
    return out;
}

template <class T>
std::vector<T> shuffled(std::vector<T> v, std::uint64_t seed) {
    vfolder_test::rng g(seed);
    for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[g.index(i)]);
    return v;
}

} // namespace

// ====================================================================== construction

TEST_CASE("seq_range_set: a default-constructed set is empty") {
    set32 const s;
    CHECK(s.empty());
    CHECK(s.count() == 0u);
    CHECK(s.range_count() == 0u);
    CHECK(s.begin() == s.end());
    CHECK_FALSE(s.contains(0));
    CHECK_FALSE(s.contains(max32));
    CHECK_FALSE(s.nth(0).has_value());
    CHECK(s.values().begin() == s.values().end());
    CHECK_SET(s, "{}");
}

TEST_CASE("seq_range_set: the initializer-list constructor takes the union of the ranges") {
    SUBCASE("disjoint, given in order") { CHECK_SET((set32{{1, 3}, {7, 7}}), "[1-3],[7]"); }
    SUBCASE("unordered, overlapping and adjacent") {
        set32 const s{{7, 9}, {1, 3}, {4, 4}, {2, 8}, {20, 20}};
        CHECK_SET(s, "[1-9],[20]");
        CHECK(s.count() == 10u);
    }
    SUBCASE("the edges of the domain") {
        CHECK_SET((set32{{max32, max32}, {0, 0}}), "[0],[MAX]");
    }
}

TEST_CASE("seq_range_set: from_values builds the set of the values") {
    std::vector<std::uint32_t> const v{9, 2, 3, 8, 2, 10, 0, max32};
    auto const s = set32::from_values(v);
    CHECK_SET(s, "[0],[2-3],[8-10],[MAX]");
    CHECK(s.count() == 7u);
    CHECK_SET(set32::from_values(std::vector<std::uint32_t>{}), "{}");
}

// ====================================================================== add

TEST_CASE("seq_range_set: add returns true only when the value was already present") {
    set32 s;
    CHECK_FALSE(s.add(5));
    CHECK(s.add(5));
    CHECK_FALSE(s.add(6));
    CHECK(s.add(6));
    CHECK(s.add(5));
    CHECK_SET(s, "[5-6]");
    CHECK(s.count() == 2u);
}

TEST_CASE("seq_range_set: add above the last range extends it or appends") {
    set32 s{{1, 3}, {10, 12}};
    CHECK_FALSE(s.add(13)); // extends the last range
    CHECK_SET(s, "[1-3],[10-13]");
    CHECK_FALSE(s.add(15)); // appends
    CHECK_SET(s, "[1-3],[10-13],[15]");
    CHECK_FALSE(s.add(16));
    CHECK_SET(s, "[1-3],[10-13],[15-16]");
    CHECK(s.count() == 9u);
}

TEST_CASE("seq_range_set: add below the first range extends it or prepends") {
    set32 s{{10, 12}, {20, 20}};
    CHECK_FALSE(s.add(9)); // extends the first range down
    CHECK_SET(s, "[9-12],[20]");
    CHECK_FALSE(s.add(7)); // prepends
    CHECK_SET(s, "[7],[9-12],[20]");
    CHECK_FALSE(s.add(6));
    CHECK_SET(s, "[6-7],[9-12],[20]");
    CHECK(s.count() == 7u);
}

TEST_CASE("seq_range_set: add in the middle joins left, right, both, or inserts") {
    set32 s{{1, 2}, {10, 11}, {20, 21}};
    SUBCASE("joins the left neighbour") {
        CHECK_FALSE(s.add(3));
        CHECK_SET(s, "[1-3],[10-11],[20-21]");
    }
    SUBCASE("joins the right neighbour") {
        CHECK_FALSE(s.add(9));
        CHECK_SET(s, "[1-2],[9-11],[20-21]");
    }
    SUBCASE("joins both neighbours") {
        s.add(5);
        s.add(7);
        CHECK_SET(s, "[1-2],[5],[7],[10-11],[20-21]");
        CHECK_FALSE(s.add(6));
        CHECK_SET(s, "[1-2],[5-7],[10-11],[20-21]");
        CHECK_FALSE(s.add(3));
        CHECK_FALSE(s.add(4));
        CHECK_SET(s, "[1-7],[10-11],[20-21]");
        CHECK(s.count() == 11u);
    }
    SUBCASE("inserts a single range") {
        CHECK_FALSE(s.add(15));
        CHECK_SET(s, "[1-2],[10-11],[15],[20-21]");
        CHECK(s.count() == 7u);
    }
    SUBCASE("a value inside a range is already present") {
        CHECK(s.add(10));
        CHECK(s.add(21));
        CHECK(s.add(1));
        CHECK_SET(s, "[1-2],[10-11],[20-21]");
        CHECK(s.count() == 6u);
    }
}

TEST_CASE("seq_range_set: add accepts 0 and MAX") {
    set32 s;
    CHECK_FALSE(s.add(max32));
    CHECK_SET(s, "[MAX]");
    CHECK_FALSE(s.add(0));
    CHECK_SET(s, "[0],[MAX]");
    CHECK_FALSE(s.add(max32 - 1));
    CHECK_FALSE(s.add(1));
    CHECK_SET(s, "[0-1],[4294967294-MAX]");
    CHECK(s.add(0));
    CHECK(s.add(max32));
    CHECK(s.count() == 4u);
    CHECK(s.contains(0));
    CHECK(s.contains(max32));
    CHECK_FALSE(s.contains(2));
}

// ====================================================================== add_range

TEST_CASE("seq_range_set: add_range returns the number of values newly added") {
    set32 s;
    CHECK(s.add_range(5, 9) == 5u);
    CHECK(s.add_range(7, 12) == 3u); // 10, 11, 12
    CHECK_SET(s, "[5-12]");
    CHECK(s.add_range(1, 20) == 12u);
    CHECK_SET(s, "[1-20]");
    CHECK(s.count() == 20u);
    SUBCASE("a fully covered range adds nothing") {
        CHECK(s.add_range(1, 20) == 0u);
        CHECK(s.add_range(3, 3) == 0u);
        CHECK(s.add_range(2, 19) == 0u);
        CHECK_SET(s, "[1-20]");
        CHECK(s.count() == 20u);
    }
    SUBCASE("a single value") {
        CHECK(s.add_range(30, 30) == 1u);
        CHECK_SET(s, "[1-20],[30]");
    }
    SUBCASE("[1, MAX] twice leaves one range") {
        CHECK(s.add_range(1, max32) == max32 - 20u);
        CHECK(s.add_range(1, max32) == 0u);
        CHECK_SET(s, "[1-MAX]");
        CHECK(s.count() == max32);
    }
}

TEST_CASE("seq_range_set: add_range appends, extends the last range, or inserts") {
    set32 s;
    CHECK(s.add_range(10, 12) == 3u); // empty set
    CHECK(s.add_range(20, 22) == 3u); // append
    CHECK_SET(s, "[10-12],[20-22]");
    CHECK(s.add_range(23, 25) == 3u); // extends the last range
    CHECK_SET(s, "[10-12],[20-25]");
    CHECK(s.add_range(15, 16) == 2u); // insert in a gap
    CHECK_SET(s, "[10-12],[15-16],[20-25]");
    CHECK(s.add_range(1, 3) == 3u); // insert at the front
    CHECK_SET(s, "[1-3],[10-12],[15-16],[20-25]");
    CHECK(s.count() == 14u);
}

TEST_CASE("seq_range_set: add_range coalesces with adjacent ranges on both sides") {
    set32 s{{1, 3}, {10, 12}};
    SUBCASE("adjacent below") {
        CHECK(s.add_range(4, 6) == 3u);
        CHECK_SET(s, "[1-6],[10-12]");
    }
    SUBCASE("adjacent above") {
        CHECK(s.add_range(7, 9) == 3u);
        CHECK_SET(s, "[1-3],[7-12]");
    }
    SUBCASE("adjacent on both sides fills the gap") {
        CHECK(s.add_range(4, 9) == 6u);
        CHECK_SET(s, "[1-12]");
        CHECK(s.count() == 12u);
    }
    SUBCASE("adjacent below the first range") {
        CHECK(s.add_range(0, 0) == 1u);
        CHECK_SET(s, "[0-3],[10-12]");
    }
    SUBCASE("one value short of touching stays separate") {
        CHECK(s.add_range(5, 8) == 4u);
        CHECK_SET(s, "[1-3],[5-8],[10-12]");
    }
}

TEST_CASE("seq_range_set: add_range swallows every range it covers") {
    set32 s{{2, 3}, {5, 5}, {7, 9}, {11, 11}, {13, 14}, {20, 20}};
    REQUIRE(s.range_count() == 6u);
    SUBCASE("strictly inside") {
        CHECK(s.add_range(4, 12) == 4u); // 4, 6, 10, 12
        CHECK_SET(s, "[2-14],[20]");
    }
    SUBCASE("overlapping the first and the last range partly") {
        CHECK(s.add_range(3, 13) == 4u); // 4, 6, 10, 12
        CHECK_SET(s, "[2-14],[20]");
    }
    SUBCASE("around everything") {
        CHECK(s.add_range(0, 30) == 31u - 10u);
        CHECK_SET(s, "[0-30]");
        CHECK(s.count() == 31u);
    }
    SUBCASE("up to a range it touches") {
        CHECK(s.add_range(6, 19) == 14u - 6u);
        CHECK_SET(s, "[2-3],[5-20]");
    }
}

TEST_CASE("seq_range_set: add_range up to MAX over earlier ranges (Dovecot's overlap bug)") {
    // Dovecot's "adjacent to seq2 + 1" test wraps when seq2 == UINT32_MAX and leaves
    // overlapping ranges; the right answer is one range.
    SUBCASE("[1-3],[5-MAX] + (2, MAX)") {
        set32 s{{1, 3}, {5, max32}};
        CHECK(s.add_range(2, max32) == 1u);
        CHECK_SET(s, "[1-MAX]");
        CHECK(s.count() == max32);
    }
    SUBCASE("[1-3],[5-7],[10-MAX] + (2, MAX)") {
        set32 s{{1, 3}, {5, 7}, {10, max32}};
        CHECK(s.add_range(2, max32) == 3u);
        CHECK_SET(s, "[1-MAX]");
        CHECK(s.count() == max32);
    }
    SUBCASE("a range starting inside the last one") {
        set32 s{{1, 3}, {10, max32}};
        CHECK(s.add_range(20, max32) == 0u);
        CHECK_SET(s, "[1-3],[10-MAX]");
    }
}

TEST_CASE("seq_range_set: add_range at 0 and MAX") {
    set32 s{{7, 9}};
    CHECK(s.add_range(0, 5) == 6u);
    CHECK_SET(s, "[0-5],[7-9]");
    CHECK(s.add_range(0, 6) == 1u);
    CHECK_SET(s, "[0-9]");
    CHECK(s.add_range(max32, max32) == 1u);
    CHECK_SET(s, "[0-9],[MAX]");
    CHECK(s.add_range(max32 - 5, max32) == 5u);
    CHECK_SET(s, "[0-9],[4294967290-MAX]");
    CHECK(s.add_range(0, 0) == 0u);
    CHECK(s.count() == 16u);
    SUBCASE("everything but one value") {
        CHECK(s.add_range(11, max32) == max32 - 10u - 6u);
        CHECK_SET(s, "[0-9],[11-MAX]");
        CHECK(s.count() == max32);
    }
    SUBCASE("an empty set: [x, MAX] and [0, x]") {
        set32 t;
        CHECK(t.add_range(max32 - 1, max32) == 2u);
        CHECK(t.add_range(0, 1) == 2u);
        CHECK_SET(t, "[0-1],[4294967294-MAX]");
        CHECK(t.add_range(0, max32 - 3) == max32 - 4u);
        CHECK_SET(t, "[0-4294967292],[4294967294-MAX]");
    }
}

// ====================================================================== remove

TEST_CASE("seq_range_set: remove returns whether the value was present") {
    set32 s;
    CHECK_FALSE(s.remove(0));
    CHECK_FALSE(s.remove(5));
    s.add_range(10, 12);
    s.add_range(20, 22);
    CHECK_FALSE(s.remove(9));  // below
    CHECK_FALSE(s.remove(23)); // above
    CHECK_FALSE(s.remove(15)); // in a gap
    CHECK_SET(s, "[10-12],[20-22]");
    CHECK(s.remove(11));
    CHECK_FALSE(s.remove(11));
    CHECK(s.count() == 5u);
}

TEST_CASE("seq_range_set: remove shrinks, deletes or splits a range") {
    set32 s{{1, 5}, {10, 10}, {20, 25}};
    SUBCASE("the first value of a range") {
        CHECK(s.remove(20));
        CHECK_SET(s, "[1-5],[10],[21-25]");
        CHECK(s.remove(1));
        CHECK_SET(s, "[2-5],[10],[21-25]");
    }
    SUBCASE("the last value of a range") {
        CHECK(s.remove(5));
        CHECK_SET(s, "[1-4],[10],[20-25]");
        CHECK(s.remove(25));
        CHECK_SET(s, "[1-4],[10],[20-24]");
    }
    SUBCASE("a single-value range") {
        CHECK(s.remove(10));
        CHECK_SET(s, "[1-5],[20-25]");
        CHECK(s.range_count() == 2u);
    }
    SUBCASE("inside a range: split") {
        CHECK(s.remove(3));
        CHECK_SET(s, "[1-2],[4-5],[10],[20-25]");
        CHECK(s.remove(22));
        CHECK_SET(s, "[1-2],[4-5],[10],[20-21],[23-25]");
        CHECK(s.count() == 10u);
    }
    SUBCASE("down to empty") {
        set32 t{{7, 8}};
        CHECK(t.remove(8));
        CHECK(t.remove(7));
        CHECK(t.empty());
        CHECK_SET(t, "{}");
    }
}

TEST_CASE("seq_range_set: remove of 0 and MAX") {
    set32 s{{0, 2}, {max32 - 2, max32}};
    CHECK(s.remove(0));
    CHECK(s.remove(max32));
    CHECK_SET(s, "[1-2],[4294967293-4294967294]");
    CHECK_FALSE(s.remove(0));
    CHECK_FALSE(s.remove(max32));
    set32 t{{0, 0}, {max32, max32}};
    CHECK(t.remove(max32));
    CHECK(t.remove(0));
    CHECK(t.empty());
    set32 u{{1, max32}};
    CHECK(u.remove(max32 / 2));
    CHECK(u.count() == max32 - 1u);
    CHECK(u.check_invariants());
}

// ====================================================================== remove_range

TEST_CASE("seq_range_set: remove_range returns the number of values removed") {
    set32 s{{1, 5}, {10, 15}, {20, 25}};
    CHECK(s.remove_range(6, 9) == 0u); // a gap
    CHECK(s.remove_range(30, 40) == 0u);
    CHECK(s.remove_range(4, 11) == 4u); // 4, 5, 10, 11
    CHECK_SET(s, "[1-3],[12-15],[20-25]");
    CHECK(s.count() == 13u);
    CHECK(s.remove_range(2, 2) == 1u);
    CHECK_SET(s, "[1],[3],[12-15],[20-25]");
    set32 e;
    CHECK(e.remove_range(0, max32) == 0u);
    CHECK(e.empty());
}

TEST_CASE("seq_range_set: remove_range at range boundaries") {
    set32 s{{1, 5}, {10, 15}, {20, 25}};
    SUBCASE("exactly one range") {
        CHECK(s.remove_range(10, 15) == 6u);
        CHECK_SET(s, "[1-5],[20-25]");
    }
    SUBCASE("a range and its gaps") {
        CHECK(s.remove_range(6, 19) == 6u);
        CHECK_SET(s, "[1-5],[20-25]");
    }
    SUBCASE("the start of a range") {
        CHECK(s.remove_range(8, 11) == 2u);
        CHECK_SET(s, "[1-5],[12-15],[20-25]");
    }
    SUBCASE("the end of a range") {
        CHECK(s.remove_range(14, 17) == 2u);
        CHECK_SET(s, "[1-5],[10-13],[20-25]");
    }
    SUBCASE("several whole ranges") {
        CHECK(s.remove_range(1, 15) == 11u);
        CHECK_SET(s, "[20-25]");
    }
}

TEST_CASE("seq_range_set: remove_range splits a range") {
    set32 s{{1, 10}};
    CHECK(s.remove_range(4, 6) == 3u);
    CHECK_SET(s, "[1-3],[7-10]");
    CHECK(s.remove_range(8, 8) == 1u);
    CHECK_SET(s, "[1-3],[7],[9-10]");
    CHECK(s.count() == 6u);
}

TEST_CASE("seq_range_set: remove_range of the whole set") {
    set32 s{{1, 5}, {10, 15}, {20, 25}};
    SUBCASE("exactly") { CHECK(s.remove_range(1, 25) == 17u); }
    SUBCASE("from 0 to MAX") { CHECK(s.remove_range(0, max32) == 17u); }
    CHECK(s.empty());
    CHECK(s.count() == 0u);
    CHECK_SET(s, "{}");
}

TEST_CASE("seq_range_set: remove_range at 0 and MAX") {
    set32 s{{0, 10}, {max32 - 10, max32}};
    CHECK(s.remove_range(0, 0) == 1u);
    CHECK(s.remove_range(max32, max32) == 1u);
    CHECK_SET(s, "[1-10],[4294967285-4294967294]");
    CHECK(s.remove_range(0, 5) == 5u);
    CHECK(s.remove_range(max32 - 3, max32) == 3u);
    CHECK_SET(s, "[6-10],[4294967285-4294967291]");
    SUBCASE("nearly everything from a large set") {
        set32 t{{0, max32 - 1}};
        CHECK(t.remove_range(0, max32 - 2) == max32 - 1u);
        CHECK_SET(t, "[4294967294]");
        set32 u{{1, max32}};
        CHECK(u.remove_range(1, max32) == max32);
        CHECK(u.empty());
    }
}

// ====================================================================== merge

TEST_CASE("seq_range_set: merge is the union and returns the number of values added") {
    set32 s{{1, 5}, {10, 15}};
    set32 const src{{3, 11}, {20, 20}};
    CHECK(s.merge(src) == 5u); // 6, 7, 8, 9, 20
    CHECK_SET(s, "[1-15],[20]");
    CHECK(s.count() == 16u);
    CHECK(s.merge(src) == 0u);
    CHECK(s.merge(set32{}) == 0u);
    CHECK_SET(s, "[1-15],[20]");
}

TEST_CASE("seq_range_set: merge into an empty set copies the source") {
    set32 s;
    set32 const src{{0, 0}, {3, 5}, {max32, max32}};
    CHECK(s.merge(src) == 5u);
    CHECK(s == src);
    CHECK_SET(s, "[0],[3-5],[MAX]");
    set32 e;
    CHECK(e.merge(set32{}) == 0u);
    CHECK(e.empty());
}

TEST_CASE("seq_range_set: merge of a disjoint set appends or prepends") {
    set32 s{{10, 12}};
    SUBCASE("above, not touching") {
        CHECK(s.merge(set32{{14, 15}, {20, 21}}) == 4u);
        CHECK_SET(s, "[10-12],[14-15],[20-21]");
    }
    SUBCASE("above, touching the last range") {
        CHECK(s.merge(set32{{13, 15}, {20, 21}}) == 5u);
        CHECK_SET(s, "[10-15],[20-21]");
    }
    SUBCASE("below, not touching") {
        CHECK(s.merge(set32{{1, 2}, {5, 8}}) == 6u);
        CHECK_SET(s, "[1-2],[5-8],[10-12]");
    }
    SUBCASE("below, touching the first range") {
        CHECK(s.merge(set32{{1, 2}, {5, 9}}) == 7u);
        CHECK_SET(s, "[1-2],[5-12]");
    }
    CHECK(s.check_invariants());
}

TEST_CASE("seq_range_set: merge of interleaved sets coalesces touching ranges") {
    set32 s{{1, 1}, {5, 5}, {9, 9}, {13, 13}};
    SUBCASE("filling every gap exactly") {
        CHECK(s.merge(set32{{2, 4}, {6, 8}, {10, 12}}) == 9u);
        CHECK_SET(s, "[1-13]");
    }
    SUBCASE("alternating single values") {
        CHECK(s.merge(set32{{3, 3}, {7, 7}, {11, 11}}) == 3u);
        CHECK_SET(s, "[1],[3],[5],[7],[9],[11],[13]");
    }
    SUBCASE("one source range over several ranges") {
        CHECK(s.merge(set32{{4, 10}, {20, 20}}) == 6u);
        CHECK_SET(s, "[1],[4-10],[13],[20]");
    }
    SUBCASE("a source range inside a gap, in the middle") {
        CHECK(s.merge(set32{{7, 7}}) == 1u);
        CHECK_SET(s, "[1],[5],[7],[9],[13]");
    }
    CHECK(s.check_invariants());
}

TEST_CASE("seq_range_set: merge of a set with itself adds nothing") {
    set32 s{{1, 3}, {7, 9}};
    CHECK(s.merge(s) == 0u);
    CHECK_SET(s, "[1-3],[7-9]");
    set32 e;
    CHECK(e.merge(e) == 0u);
    CHECK(e.empty());
}

TEST_CASE("seq_range_set: merge accepts a source with another storage type") {
    set32 s{{1, 3}};
    small_set32 src;
    src.add_range(4, 6);
    src.add(10);
    CHECK(s.merge(src) == 4u);
    CHECK_SET(s, "[1-6],[10]");
    small_set32 t;
    CHECK(t.merge(s) == 7u);
    CHECK_SET(t, "[1-6],[10]");
}

TEST_CASE("seq_range_set: merge at 0 and MAX") {
    set32 s{{5, 5}};
    CHECK(s.merge(set32{{0, 4}, {max32, max32}}) == 6u);
    CHECK_SET(s, "[0-5],[MAX]");
    CHECK(s.merge(set32{{6, max32 - 2}}) == max32 - 7u);
    CHECK_SET(s, "[0-4294967293],[MAX]");
    CHECK(s.count() == max32);
}

// ====================================================================== merge_n

TEST_CASE("seq_range_set: merge_n adds the first n values of the source") {
    set32 const src{{4, 5}, {7, 9}, {11, 11}};
    set32 s{{6, 6}};
    SUBCASE("the SEMANTICS example: 3 values of [4-5],[7-9],[11] into [6]") {
        CHECK(s.merge_n(src, 3) == 3u);
        CHECK_SET(s, "[4-7]");
    }
    SUBCASE("n == 0 adds nothing") {
        CHECK(s.merge_n(src, 0) == 0u);
        CHECK_SET(s, "[6]");
    }
    SUBCASE("n at a range boundary") {
        CHECK(s.merge_n(src, 2) == 2u);
        CHECK_SET(s, "[4-6]");
        CHECK(s.merge_n(src, 5) == 3u);
        CHECK_SET(s, "[4-9]");
    }
    SUBCASE("n == count adds everything") {
        CHECK(s.merge_n(src, 6) == 6u);
        CHECK_SET(s, "[4-9],[11]");
    }
    SUBCASE("n larger than the count adds everything") {
        CHECK(s.merge_n(src, 1000) == 6u);
        CHECK_SET(s, "[4-9],[11]");
        CHECK(s.merge_n(src, max32) == 0u);
    }
    SUBCASE("an empty source") {
        CHECK(s.merge_n(set32{}, 5) == 0u);
        CHECK_SET(s, "[6]");
    }
    SUBCASE("into an empty set") {
        set32 e;
        CHECK(e.merge_n(src, 4) == 4u);
        CHECK_SET(e, "[4-5],[7-8]");
    }
    SUBCASE("a source with another storage type") {
        small_set32 e;
        CHECK(e.merge_n(src, 4) == 4u);
        CHECK_SET(e, "[4-5],[7-8]");
    }
    SUBCASE("from itself") {
        set32 t{{1, 3}, {5, 6}};
        CHECK(t.merge_n(t, 3) == 0u);
        CHECK_SET(t, "[1-3],[5-6]");
    }
    SUBCASE("values near MAX") {
        set32 const big{{max32 - 4, max32}};
        set32 e;
        CHECK(e.merge_n(big, 2) == 2u);
        CHECK_SET(e, "[4294967291-4294967292]");
        CHECK(e.merge_n(big, 5) == 3u);
        CHECK_SET(e, "[4294967291-MAX]");
    }
}

// ====================================================================== remove_set

TEST_CASE("seq_range_set: remove_set is the difference and returns the number removed") {
    set32 s{{1, 10}, {20, 30}, {40, 40}};
    SUBCASE("an empty source, or an empty set") {
        CHECK(s.remove_set(set32{}) == 0u);
        CHECK_SET(s, "[1-10],[20-30],[40]");
        set32 e;
        CHECK(e.remove_set(s) == 0u);
        CHECK(e.empty());
    }
    SUBCASE("a disjoint source") {
        CHECK(s.remove_set(set32{{0, 0}, {11, 19}, {31, 39}, {41, max32}}) == 0u);
        CHECK_SET(s, "[1-10],[20-30],[40]");
    }
    SUBCASE("holes in one range") {
        CHECK(s.remove_set(set32{{2, 3}, {5, 5}, {9, 10}}) == 5u);
        CHECK_SET(s, "[1],[4],[6-8],[20-30],[40]");
    }
    SUBCASE("one source range over several ranges") {
        CHECK(s.remove_set(set32{{5, 25}}) == 12u);
        CHECK_SET(s, "[1-4],[26-30],[40]");
    }
    SUBCASE("one source range reaching into the next range after cutting one") {
        CHECK(s.remove_set(set32{{3, 3}, {8, 22}, {25, 25}, {28, 45}}) == 12u);
        CHECK_SET(s, "[1-2],[4-7],[23-24],[26-27]");
    }
    SUBCASE("everything") {
        CHECK(s.remove_set(set32{{0, 100}}) == 22u);
        CHECK(s.empty());
    }
    SUBCASE("itself") {
        CHECK(s.remove_set(s) == 22u);
        CHECK(s.empty());
    }
    SUBCASE("a source with another storage type") {
        small_set32 src;
        src.add_range(10, 20);
        CHECK(s.remove_set(src) == 2u);
        CHECK_SET(s, "[1-9],[21-30],[40]");
    }
    CHECK(s.check_invariants());
}

TEST_CASE("seq_range_set: remove_set at 0 and MAX") {
    set32 s{{0, 5}, {max32 - 5, max32}};
    CHECK(s.remove_set(set32{{0, 0}, {max32, max32}}) == 2u);
    CHECK_SET(s, "[1-5],[4294967290-4294967294]");
    CHECK(s.remove_set(set32{{0, 2}, {max32 - 1, max32}}) == 3u);
    CHECK_SET(s, "[3-5],[4294967290-4294967293]");
    set32 big{{1, max32}};
    CHECK(big.remove_set(set32{{0, 9}, {20, max32}}) == max32 - 10u);
    CHECK_SET(big, "[10-19]");
}

// ====================================================================== intersect

TEST_CASE("seq_range_set: intersect keeps the common values and returns the number removed") {
    SUBCASE("0 is removed like any value (no Dovecot element-0 quirk)") {
        set32 s{{0, 5}};
        CHECK(s.intersect(set32{{3, 4}}) == 4u);
        CHECK_SET(s, "[3-4]");
    }
    SUBCASE("an empty source removes everything") {
        set32 s{{0, 5}, {max32, max32}};
        CHECK(s.intersect(set32{}) == 7u);
        CHECK(s.empty());
    }
    SUBCASE("an empty set") {
        set32 s;
        CHECK(s.intersect(set32{{1, 5}}) == 0u);
        CHECK(s.empty());
    }
    SUBCASE("itself") {
        set32 s{{1, 5}, {9, 9}};
        CHECK(s.intersect(s) == 0u);
        CHECK_SET(s, "[1-5],[9]");
    }
    SUBCASE("disjoint sets") {
        set32 s{{1, 5}, {10, 12}};
        CHECK(s.intersect(set32{{6, 9}, {13, 20}}) == 8u);
        CHECK(s.empty());
    }
    SUBCASE("several ranges against several") {
        set32 s{{1, 10}, {20, 30}, {40, 50}};
        CHECK(s.intersect(set32{{5, 22}, {25, 25}, {29, 41}, {50, max32}}) == 32u - 15u);
        CHECK_SET(s, "[5-10],[20-22],[25],[29-30],[40-41],[50]");
        CHECK(s.count() == 15u);
    }
    SUBCASE("a superset source") {
        set32 s{{1, 10}, {20, 30}};
        CHECK(s.intersect(set32{{0, max32 - 1}}) == 0u);
        CHECK_SET(s, "[1-10],[20-30]");
    }
    SUBCASE("at MAX") {
        set32 s{{0, 0}, {max32 - 3, max32}};
        CHECK(s.intersect(set32{{max32, max32}}) == 4u);
        CHECK_SET(s, "[MAX]");
    }
    SUBCASE("a source with another storage type") {
        set32 s{{1, 10}};
        small_set32 src;
        src.add_range(3, 4);
        src.add(8);
        CHECK(s.intersect(src) == 7u);
        CHECK_SET(s, "[3-4],[8]");
    }
}

// ====================================================================== have_common

TEST_CASE("seq_range_set: have_common tells whether the sets share a value") {
    SUBCASE("empty sets") {
        CHECK_FALSE(set32{}.have_common(set32{}));
        CHECK_FALSE(set32{{1, 5}}.have_common(set32{}));
        CHECK_FALSE(set32{}.have_common(set32{{1, 5}}));
    }
    SUBCASE("touching but not overlapping") {
        CHECK_FALSE(set32{{1, 3}}.have_common(set32{{4, 6}}));
        CHECK_FALSE(set32{{4, 6}}.have_common(set32{{1, 3}}));
    }
    SUBCASE("interleaved without a common value") {
        set32 const a{{1, 1}, {3, 3}, {5, 5}, {10, 20}};
        set32 const b{{2, 2}, {4, 4}, {6, 9}, {21, max32}};
        CHECK_FALSE(a.have_common(b));
        CHECK_FALSE(b.have_common(a));
    }
    SUBCASE("one shared value") {
        set32 const a{{1, 1}, {3, 3}, {5, 5}, {10, 20}};
        CHECK(a.have_common(set32{{2, 2}, {20, 30}}));
        CHECK(set32{{20, 30}}.have_common(a));
        CHECK(a.have_common(set32{{0, 1}}));
    }
    SUBCASE("itself") {
        set32 const a{{7, 7}};
        CHECK(a.have_common(a));
    }
    SUBCASE("at 0 and MAX") {
        CHECK(set32{{0, 0}}.have_common(set32{{0, 3}}));
        CHECK(set32{{max32, max32}}.have_common(set32{{1, max32}}));
        CHECK_FALSE(set32{{max32, max32}}.have_common(set32{{0, max32 - 1}}));
    }
    SUBCASE("another storage type") {
        small_set32 b;
        b.add(5);
        CHECK(set32{{5, 5}}.have_common(b));
        CHECK_FALSE(set32{{6, 6}}.have_common(b));
    }
}

// ====================================================================== count

TEST_CASE("seq_range_set: count is the number of values, kept across mutations") {
    set32 s;
    CHECK(s.count() == 0u);
    s.add_range(1, 100);
    CHECK(s.count() == 100u);
    s.remove(50);
    CHECK(s.count() == 99u);
    s.add_range(max32 - 9, max32);
    CHECK(s.count() == 109u);
    CHECK(s.remove_range(max32 - 9, max32) == 10u);
    CHECK(s.count() == 99u);
    s.invert(1, 100);
    CHECK(s.count() == 1u);
    CHECK_SET(s, "[50]");
    s.clear();
    CHECK(s.count() == 0u);
    SUBCASE("the largest count: every value but one") {
        set32 t{{1, max32}};
        CHECK(t.count() == max32);
        set8 u{{0, 254}};
        CHECK(u.count() == 255);
    }
}

// ====================================================================== nth / cursor

TEST_CASE("seq_range_set: nth and cursor return the n-th smallest value") {
    set32 const s{{4, 5}, {7, 9}, {11, 11}};
    SUBCASE("the SEMANTICS example through one cursor") {
        auto c = s.cursor();
        CHECK(c(0) == 4u);
        CHECK(c(1) == 5u);
        CHECK(c(2) == 7u);
        CHECK(c(3) == 8u);
        CHECK(c(4) == 9u);
        CHECK(c(5) == 11u);
        CHECK_FALSE(c(6).has_value());
        CHECK_FALSE(c(7).has_value());
        CHECK(c(2) == 7u); // restarts from the beginning
        CHECK(c(5) == 11u);
        CHECK(c(0) == 4u);
    }
    SUBCASE("nth on its own") {
        std::array<std::uint32_t, 6> const want{4, 5, 7, 8, 9, 11};
        for (std::uint32_t i = 0; i < 6; ++i) CHECK(s.nth(i) == want[i]);
        CHECK_FALSE(s.nth(6).has_value());
        CHECK_FALSE(s.nth(max32).has_value());
    }
    SUBCASE("repeating and skipping") {
        auto c = s.cursor();
        CHECK(c(3) == 8u);
        CHECK(c(3) == 8u);
        CHECK(c(4) == 9u);
        CHECK(c(5) == 11u);
        CHECK(c(1) == 5u);
    }
    SUBCASE("an empty set") {
        set32 const e;
        auto c = e.cursor();
        CHECK_FALSE(c(0).has_value());
        CHECK_FALSE(e.nth(0).has_value());
    }
    SUBCASE("values at 0 and MAX") {
        set32 const t{{0, 1}, {max32 - 1, max32}};
        auto c = t.cursor();
        CHECK(c(0) == 0u);
        CHECK(c(1) == 1u);
        CHECK(c(2) == max32 - 1);
        CHECK(c(3) == max32);
        CHECK_FALSE(c(4).has_value());
        set32 const big{{1, max32}};
        CHECK(big.nth(max32 - 1) == max32);
        CHECK_FALSE(big.nth(max32).has_value());
    }
}

// ====================================================================== invert

TEST_CASE("seq_range_set: invert replaces the set by its complement within [lo, hi]") {
    SUBCASE("[5-6] over [1, 10], and back") {
        set32 s{{5, 6}};
        s.invert(1, 10);
        CHECK_SET(s, "[1-4],[7-10]");
        CHECK(s.count() == 8u);
        s.invert(1, 10);
        CHECK_SET(s, "[5-6]");
        CHECK(s.count() == 2u);
    }
    SUBCASE("an empty set becomes [lo, hi]") {
        set32 s;
        s.invert(3, 9);
        CHECK_SET(s, "[3-9]");
        CHECK(s.count() == 7u);
        set32 t;
        t.invert(4, 4);
        CHECK_SET(t, "[4]");
    }
    SUBCASE("exactly [lo, hi] becomes empty") {
        set32 s{{3, 9}};
        s.invert(3, 9);
        CHECK(s.empty());
        CHECK(s.count() == 0u);
        CHECK_SET(s, "{}");
    }
    SUBCASE("ranges touching lo and hi") {
        set32 s{{1, 2}, {5, 5}, {9, 10}};
        s.invert(1, 10);
        CHECK_SET(s, "[3-4],[6-8]");
        s.invert(1, 10);
        CHECK_SET(s, "[1-2],[5],[9-10]");
    }
    SUBCASE("a wider window than the set") {
        set32 s{{5, 5}};
        s.invert(0, 20);
        CHECK_SET(s, "[0-4],[6-20]");
        CHECK(s.count() == 20u);
    }
    SUBCASE("many ranges") {
        set32 s{{2, 2}, {4, 4}, {6, 6}, {8, 8}};
        s.invert(1, 9);
        CHECK_SET(s, "[1],[3],[5],[7],[9]");
    }
}

TEST_CASE("seq_range_set: invert over the whole domain of a non-empty set, and back") {
    SUBCASE("a value in the middle") {
        set32 s{{5, 5}};
        s.invert(0, max32);
        CHECK_SET(s, "[0-4],[6-MAX]");
        CHECK(s.count() == max32);
        s.invert(0, max32);
        CHECK_SET(s, "[5]");
    }
    SUBCASE("0") {
        set32 s{{0, 0}};
        s.invert(0, max32);
        CHECK_SET(s, "[1-MAX]");
        s.invert(0, max32);
        CHECK_SET(s, "[0]");
    }
    SUBCASE("MAX") {
        set32 s{{max32, max32}};
        s.invert(0, max32);
        CHECK_SET(s, "[0-4294967294]");
        s.invert(0, max32);
        CHECK_SET(s, "[MAX]");
    }
    SUBCASE("0 and MAX") {
        set32 s{{0, 0}, {max32, max32}};
        s.invert(0, max32);
        CHECK_SET(s, "[1-4294967294]");
        CHECK(s.count() == max32 - 1u);
        s.invert(0, max32);
        CHECK_SET(s, "[0],[MAX]");
    }
    SUBCASE("several ranges, over [x, MAX]") {
        set32 s{{10, 20}, {max32 - 1, max32 - 1}};
        s.invert(5, max32);
        CHECK_SET(s, "[5-9],[21-4294967293],[MAX]");
        s.invert(5, max32);
        CHECK_SET(s, "[10-20],[4294967294]");
    }
}

// ====================================================================== remove_nth

TEST_CASE("seq_range_set: remove_nth removes consecutive values from the n-th on") {
    set32 s{{1, 10}, {20, 25}};
    SUBCASE("inside one range") {
        s.remove_nth(2, 3);
        CHECK_SET(s, "[1-2],[6-10],[20-25]");
    }
    SUBCASE("across ranges") {
        s.remove_nth(8, 4); // 9, 10, 20, 21
        CHECK_SET(s, "[1-8],[22-25]");
    }
    SUBCASE("count 0 does nothing") {
        s.remove_nth(3, 0);
        CHECK_SET(s, "[1-10],[20-25]");
    }
    SUBCASE("n at or past the count does nothing") {
        s.remove_nth(16, 5);
        s.remove_nth(max32, max32);
        CHECK_SET(s, "[1-10],[20-25]");
    }
    SUBCASE("a count past the end removes everything from the n-th on") {
        s.remove_nth(12, 100);
        CHECK_SET(s, "[1-10],[20-21]");
        s.remove_nth(1, max32);
        CHECK_SET(s, "[1]");
    }
    SUBCASE("exactly to the end") {
        s.remove_nth(10, 6);
        CHECK_SET(s, "[1-10]");
    }
    SUBCASE("everything") {
        s.remove_nth(0, 16);
        CHECK(s.empty());
    }
    SUBCASE("the last value") {
        s.remove_nth(15, 1);
        CHECK_SET(s, "[1-10],[20-24]");
    }
    SUBCASE("values at MAX") {
        set32 t{{0, 0}, {max32 - 2, max32}};
        t.remove_nth(2, max32);
        CHECK_SET(t, "[0],[4294967293]");
        t.remove_nth(0, 1);
        CHECK_SET(t, "[4294967293]");
    }
}

// ====================================================================== the whole domain

TEST_CASE("seq_range_set: uint8_t sets get close to the whole domain without reaching it") {
    SUBCASE("add_range of all but one value") {
        set8 s;
        CHECK(s.add_range(0, 254) == 255);
        CHECK_SET(s, "[0-254]");
        CHECK(s.count() == 255);
        set8 t;
        CHECK(t.add_range(1, 255) == 255);
        CHECK_SET(t, "[1-MAX]");
        set8 u{{0, 99}, {101, 255}};
        CHECK(u.count() == 255);
        CHECK_SET(u, "[0-99],[101-MAX]");
    }
    SUBCASE("add up to all but one value, from both ends") {
        set8 s{{2, 255}};
        CHECK_FALSE(s.add(1));
        CHECK(s.count() == 255);
        CHECK(s.add(255));
        CHECK(s.remove(255));
        CHECK_FALSE(s.add(0));
        CHECK_SET(s, "[0-254]");
        CHECK(s.count() == 255);
    }
    SUBCASE("merge up to all but one value") {
        set8 s{{0, 100}};
        CHECK(s.merge(set8{{102, 255}}) == 154);
        CHECK_SET(s, "[0-100],[102-MAX]");
        CHECK(s.count() == 255);
    }
    SUBCASE("invert over [0, 255]") {
        set8 s{{7, 7}};
        s.invert(0, 255);
        CHECK_SET(s, "[0-6],[8-MAX]");
        CHECK(s.count() == 255);
        s.invert(0, 255);
        CHECK_SET(s, "[7]");
        set8 t{{0, 254}};
        t.invert(0, 255);
        CHECK_SET(t, "[MAX]");
    }
    SUBCASE("bulk insert of all but one value") {
        std::vector<std::uint8_t> v;
        for (unsigned i = 0; i < 256; ++i)
            if (i != 128) v.push_back(static_cast<std::uint8_t>(i));
        auto const s = set8::from_values(shuffled(v, 11));
        CHECK_SET(s, "[0-127],[129-MAX]");
        CHECK(s.count() == 255);
    }
    SUBCASE("queries on a set of 255 values") {
        set8 const s{{0, 254}};
        CHECK(s.nth(254) == std::uint8_t{254});
        CHECK_FALSE(s.nth(255).has_value());
        CHECK(ranges::distance(s.values()) == 255);
        CHECK(s.have_common(set8{{254, 255}}));
        CHECK_FALSE(s.contains(255));
    }
}

// ====================================================================== bulk insert

namespace {

// Inserts `v` into `start` through each of the three bulk entry points and checks the
// result, the return value and the invariant against the model.
template <class Set>
void check_bulk(Set const& start, std::vector<typename Set::value_type> const& v) {
    using T = typename Set::value_type;
    naive_set<T> m;
    for (auto const& r : start) m.add_range(r.first, r.last);
    auto const added = m.insert(v.begin(), v.end());
    {
        INFO("insert(range)");
        Set s = start;
        CHECK(std::uint64_t{s.insert(v)} == added);
        CHECK(s.check_invariants());
        CHECK(vfolder_test::same_values(s, m));
    }
    {
        INFO("insert_unsorted(span)");
        Set s = start;
        auto buf = v;
        CHECK(std::uint64_t{s.insert_unsorted(std::span<T>(buf))} == added);
        CHECK(s.check_invariants());
        CHECK(vfolder_test::same_values(s, m));
        auto sorted_in = v;
        std::sort(sorted_in.begin(), sorted_in.end());
        std::sort(buf.begin(), buf.end());
        CHECK(buf == sorted_in); // reordered at most
    }
    {
        INFO("from_values + merge");
        Set s = start;
        Set const b = Set::from_values(v);
        CHECK(b.check_invariants());
        CHECK(std::uint64_t{s.merge(b)} == added);
        CHECK(s.check_invariants());
        CHECK(vfolder_test::same_values(s, m));
    }
}

} // namespace

TEST_CASE("seq_range_set: insert of a small unsorted batch with duplicates") {
    std::vector<std::uint32_t> const v{9, 2, 3, 8, 2, 10, 3, 3, 20, 0, max32, max32 - 1, 5};
    SUBCASE("into an empty set") { check_bulk(set32{}, v); }
    SUBCASE("into a non-empty set") { check_bulk(set32{{4, 4}, {11, 19}, {100, 200}}, v); }
    SUBCASE("the result") {
        auto const s = set32::from_values(v);
        CHECK_SET(s, "[0],[2-3],[5],[8-10],[20],[4294967294-MAX]");
    }
    SUBCASE("a single value, and values all equal") {
        check_bulk(set32{}, {7});
        check_bulk(set32{{1, 6}}, {7, 7, 7, 7});
    }
}

TEST_CASE("seq_range_set: insert of a dense batch (bitmap path)") {
    SUBCASE("runs crossing 64-bit words, shuffled, duplicates") {
        std::vector<std::uint32_t> v;
        for (std::uint32_t x = 1000; x < 1300; ++x)
            if (x % 7 != 0 && (x < 1060 || x > 1070)) v.push_back(x);
        v.insert(v.end(), v.begin(), v.begin() + 50); // duplicates
        v = shuffled(v, 1);
        check_bulk(set32{}, v);
        check_bulk(set32{{990, 1000}, {1063, 1065}, {1301, 1400}}, v);
    }
    SUBCASE("one run of exactly 64 values, and of 128") {
        std::vector<std::uint32_t> v(64);
        std::iota(v.begin(), v.end(), 0u);
        check_bulk(set32{}, shuffled(v, 2));
        auto const s = set32::from_values(v);
        CHECK_SET(s, "[0-63]");
        std::vector<std::uint32_t> w(128);
        std::iota(w.begin(), w.end(), 64u);
        CHECK_SET(set32::from_values(shuffled(w, 3)), "[64-191]");
    }
    SUBCASE("a run ending at the last bit of a word, then one more value") {
        std::vector<std::uint32_t> v(63);
        std::iota(v.begin(), v.end(), 1u); // 1..63: bits 0..62 of the first word
        v.push_back(64);                    // bit 63
        v.push_back(130);
        CHECK_SET(set32::from_values(shuffled(v, 4)), "[1-64],[130]");
    }
    SUBCASE("sparse-looking but within 128 bits per value") {
        std::vector<std::uint32_t> v;
        for (std::uint32_t i = 0; i < 100; ++i) v.push_back(i * 100u); // span 9901 < 12800
        check_bulk(set32{}, shuffled(v, 5));
        check_bulk(set32{{50, 150}, {9000, 9050}}, v);
    }
    SUBCASE("values 0 and MAX") {
        std::vector<std::uint32_t> lo(100), hi(100);
        std::iota(lo.begin(), lo.end(), 0u);
        std::iota(hi.begin(), hi.end(), max32 - 99u);
        check_bulk(set32{}, shuffled(lo, 6));
        check_bulk(set32{}, shuffled(hi, 7));
        CHECK_SET(set32::from_values(hi), "[4294967196-MAX]");
        check_bulk(set32{{100, 100}, {max32 - 200, max32 - 100}}, hi);
    }
    SUBCASE("uint8_t: 255 values and duplicates") {
        std::vector<std::uint8_t> v;
        for (unsigned i = 0; i < 600; ++i) v.push_back(static_cast<std::uint8_t>((i * 7u) % 256u));
        std::erase(v, std::uint8_t{77});
        check_bulk(set8{}, v);
        check_bulk(set8{{0, 5}}, v);
        CHECK_SET(set8::from_values(v), "[0-76],[78-MAX]");
    }
}

TEST_CASE("seq_range_set: insert of a sparse batch (radix path)") {
    vfolder_test::rng g(42);
    SUBCASE("uint32_t values spread over the whole domain, with 0 and MAX") {
        std::vector<std::uint32_t> v;
        for (int i = 0; i < 1000; ++i) v.push_back(static_cast<std::uint32_t>(g.next()));
        v.push_back(0);
        v.push_back(max32);
        v.push_back(1);
        v.push_back(max32 - 1);
        v.insert(v.end(), v.begin(), v.begin() + 300); // duplicates
        v = shuffled(v, 8);
        check_bulk(set32{}, v);
        check_bulk(set32{{0, 0}, {2, 1000}, {max32 - 10, max32 - 2}}, v);
    }
    SUBCASE("uint32_t values sharing their high bytes (digit passes skipped)") {
        std::vector<std::uint32_t> v;
        for (int i = 0; i < 400; ++i)
            v.push_back(0x12340000u | static_cast<std::uint32_t>(g.next() & 0xfff0u));
        for (std::uint32_t i = 0; i < 10; ++i) v.push_back(0x12340000u + 0x10000u * i);
        check_bulk(set32{}, v);
    }
    SUBCASE("runs of consecutive values in a sparse batch") {
        std::vector<std::uint32_t> v;
        for (std::uint32_t base = 0; base < 300; ++base)
            for (std::uint32_t k = 0; k < 3; ++k) v.push_back(base * 1'000'000u + k);
        check_bulk(set32{}, shuffled(v, 9));
        CHECK(set32::from_values(v).range_count() == 300u);
    }
    SUBCASE("uint64_t and uint16_t") {
        std::vector<std::uint64_t> v;
        for (int i = 0; i < 500; ++i) v.push_back(g.next());
        v.push_back(0);
        v.push_back(max64);
        check_bulk(set64{}, v);
        std::vector<std::uint16_t> w;
        for (int i = 0; i < 300; ++i) w.push_back(static_cast<std::uint16_t>(g.next()));
        w.push_back(0);
        w.push_back(65535);
        check_bulk(set16{}, w);
    }
}

TEST_CASE("seq_range_set: insert of uint64_t values holding 0 and MAX (span wrap)") {
    // Regression: with 64-bit values the span max - min + 1 wrapped to 0 and a batch of
    // 64+ values was sent to the bitmap path with a zero-word bitmap (null dereference).
    std::vector<std::uint64_t> v(63);
    std::iota(v.begin(), v.end(), std::uint64_t{0});
    v.push_back(max64);
    auto const s = set64::from_values(v);
    CHECK(s.check_invariants());
    CHECK(s.count() == 64u);
    CHECK(s.range_count() == 2u);
    CHECK(s.front() == seq_range<std::uint64_t>{0, 62});
    CHECK(s.back() == seq_range<std::uint64_t>{max64, max64});
    check_bulk(set64{}, shuffled(v, 10));
    check_bulk(set64{{100, 200}, {max64 - 5, max64 - 1}}, v);
}

TEST_CASE("seq_range_set: insert of an empty batch adds nothing") {
    set32 s{{1, 3}};
    CHECK(s.insert(std::vector<std::uint32_t>{}) == 0u);
    CHECK(s.insert_unsorted(std::span<std::uint32_t>{}) == 0u);
    CHECK_SET(s, "[1-3]");
    set32 e;
    CHECK(e.insert(std::vector<std::uint32_t>{}) == 0u);
    CHECK(e.empty());
}

TEST_CASE("seq_range_set: insert takes any input range convertible to the value type") {
    set32 s;
    std::list<std::uint16_t> const l{5, 3, 4, 9};
    CHECK(s.insert(l) == 4u);
    CHECK_SET(s, "[3-5],[9]");
    CHECK(s.insert(ranges::views::iota(8u, 12u)) == 3u);
    CHECK_SET(s, "[3-5],[8-11]");
    std::array<std::uint32_t, 3> const a{1, 2, 3};
    CHECK(s.insert(a) == 2u);
    CHECK_SET(s, "[1-5],[8-11]");
}

// ====================================================================== views and iteration

TEST_CASE("seq_range_set: values() is a forward view of the values, ascending") {
    using view = set32::values_view;
    static_assert(ranges::forward_range<view>);
    static_assert(ranges::view_<view>);
    static_assert(std::same_as<ranges::range_value_t<view>, std::uint32_t>);
    static_assert(ranges::forward_range<set8::values_view>);
    SUBCASE("across ranges, up to MAX") {
        set32 const s{{0, 2}, {7, 7}, {max32 - 1, max32}};
        auto const v = s.values() | ranges::to<std::vector>();
        CHECK(v == std::vector<std::uint32_t>{0, 1, 2, 7, max32 - 1, max32});
        CHECK(ranges::distance(s.values()) == 6);
        CHECK(v == values_of(s));
    }
    SUBCASE("a single range ending at MAX") {
        set32 const s{{max32, max32}};
        CHECK((s.values() | ranges::to<std::vector>()) == std::vector<std::uint32_t>{max32});
    }
    SUBCASE("an empty set, and a default-constructed view") {
        set32 const s;
        CHECK(s.values().begin() == s.values().end());
        CHECK(ranges::distance(view{}) == 0);
    }
    SUBCASE("multi-pass and composable") {
        set32 const s{{1, 3}, {10, 12}};
        auto const vw = s.values();
        auto it = vw.begin();
        auto const copy = it;
        ++it;
        CHECK(*copy == 1u);
        CHECK(*it == 2u);
        auto const first4 = vw | ranges::views::take(4) | ranges::to<std::vector>();
        CHECK(first4 == std::vector<std::uint32_t>{1, 2, 3, 10});
        CHECK((vw | ranges::to<std::vector>()) == std::vector<std::uint32_t>{1, 2, 3, 10, 11, 12});
    }
    SUBCASE("uint8_t values up to 255") {
        set8 const s{{250, 255}};
        CHECK(ranges::distance(s.values()) == 6);
        CHECK(values_of(s) == (s.values() | ranges::to<std::vector>()));
    }
}

TEST_CASE("seq_range_set: ranges() and begin()/end() iterate over the ranges") {
    using sub = decltype(set32{}.ranges());
    static_assert(ranges::view_<sub>);
    static_assert(ranges::contiguous_range<sub>);
    static_assert(ranges::sized_range<sub>);
    set32 const s{{1, 3}, {7, 7}, {10, max32}};
    auto const rs = s.ranges() | ranges::to<std::vector>();
    REQUIRE(rs.size() == 3u);
    CHECK(rs[0] == seq_range<std::uint32_t>{1, 3});
    CHECK(rs[1] == seq_range<std::uint32_t>{7, 7});
    CHECK(rs[2] == seq_range<std::uint32_t>{10, max32});
    CHECK(s[1] == rs[1]);
    CHECK(s.front() == rs[0]);
    CHECK(s.back() == rs[2]);
    CHECK(s.range_count() == 3u);
    CHECK(std::distance(s.begin(), s.end()) == 3);
    CHECK(std::equal(s.begin(), s.end(), s.storage().begin(), s.storage().end()));
    CHECK(ranges::distance(set32{}.ranges()) == 0);
}

TEST_CASE("seq_range_set: for_each_value visits every value in order") {
    SUBCASE("short ranges, up to MAX") {
        set32 const s{{0, 1}, {5, 5}, {max32 - 1, max32}};
        CHECK(values_of(s) == std::vector<std::uint32_t>{0, 1, 5, max32 - 1, max32});
        CHECK(values_of(set32{}).empty());
        set8 const t{{250, 250}, {252, 255}};
        CHECK(values_of(t) == std::vector<std::uint8_t>{250, 252, 253, 254, 255});
    }
    SUBCASE("many short ranges of every length, and long ones between them") {
        set32 s;
        std::uint32_t x = 0;
        for (std::uint32_t i = 0; i < 400; ++i) {
            std::uint32_t const len = i % 37 == 36 ? 100 + i : 1 + i % 9;
            s.add_range(x, x + len - 1);
            x += len + 1 + i % 3;
        }
        s.add_range(max32 - 7, max32);
        CHECK(values_of(s) == (s.values() | ranges::to<std::vector>()));
        CHECK(values_of(s).size() == s.count());
    }
}

TEST_CASE("seq_range_set: operator== compares the contents") {
    set32 a{{1, 3}, {7, 9}};
    set32 b;
    b.add(9);
    b.add(1);
    b.add_range(2, 3);
    b.add_range(7, 8);
    CHECK(a == b);
    CHECK(set32{} == set32{});
    b.remove(8);
    CHECK_FALSE(a == b);
    CHECK(a != b);
    CHECK_FALSE(set32{{1, 3}} == set32{{1, 2}, {4, 4}}); // same count, other values
    CHECK_FALSE(set32{} == set32{{0, 0}});
}

TEST_CASE("seq_range_set: contains") {
    set32 const s{{0, 0}, {5, 9}, {max32, max32}};
    for (std::uint32_t v : {0u, 5u, 7u, 9u, max32}) CHECK(s.contains(v));
    for (std::uint32_t v : {1u, 4u, 10u, max32 - 1}) CHECK_FALSE(s.contains(v));
}

TEST_CASE("seq_range_set: copies, clear, swap and reserve") {
    set32 a{{1, 3}};
    set32 b{{10, 20}, {30, 30}};
    set32 const a0 = a;
    a.add(5);
    CHECK_SET(a0, "[1-3]"); // a copy is independent
    swap(a, b);
    CHECK_SET(a, "[10-20],[30]");
    CHECK_SET(b, "[1-3],[5]");
    CHECK(a.count() == 12u);
    CHECK(b.count() == 4u);
    a.swap(b);
    CHECK_SET(a, "[1-3],[5]");
    a.reserve(100);
    CHECK(a.storage().capacity() >= 100u);
    CHECK_SET(a, "[1-3],[5]");
    a.clear();
    CHECK(a.empty());
    CHECK(a.count() == 0u);
    CHECK(a.check_invariants());
    set32 moved = std::move(b);
    CHECK_SET(moved, "[10-20],[30]");
}

// ====================================================================== storage and types

namespace {

template <class Set>
void exercise_set() {
    using T = typename Set::value_type;
    constexpr T mx = Set::max_value;
    Set s;
    CHECK_FALSE(s.add(mx));
    CHECK_FALSE(s.add(0));
    CHECK(s.add_range(2, 9) == 8u);
    CHECK(s.add_range(static_cast<T>(mx - 5), static_cast<T>(mx - 1)) == 5u);
    CHECK(s.range_count() == 3u);
    CHECK(s.count() == 15u);
    CHECK(s.remove(5));
    CHECK(s.remove_range(7, 8) == 2u);
    CHECK(s.range_count() == 5u);
    CHECK(s.check_invariants());
    CHECK(s.nth(3) == T{4});
    CHECK(s.contains(mx));
    Set other;
    other.add_range(1, 20);
    CHECK(s.have_common(other));
    Set u = s;
    CHECK(u.merge(other) == 20u - 5u);
    CHECK(u.check_invariants());
    CHECK(u.remove_set(other) == 20u);
    CHECK(u.intersect(s) == 0u);
    Set w = s;
    CHECK(w.intersect(other) == 7u);
    CHECK(w.count() == 5u);
    s.invert(0, mx);
    CHECK(s.check_invariants());
    CHECK_FALSE(s.contains(mx));
    CHECK(s.contains(1));
    s.invert(0, mx);
    CHECK(s.count() == 12u);
    std::vector<T> vals{3, 1, 2, static_cast<T>(mx - 7), mx};
    Set b = Set::from_values(vals);
    CHECK(b.count() == 5u);
    CHECK(s.insert(vals) == 2u);
    CHECK(s.check_invariants());
    s.remove_nth(0, 4);
    CHECK(s.check_invariants());
    CHECK(s.nth(0) == T{4});
    CHECK(ranges::distance(s.values()) == static_cast<std::ptrdiff_t>(s.count()));
}

template <class T, std::size_t N>
using small_vector_set = seq_range_set<T, boost::container::small_vector<seq_range<T>, N>>;
template <class T>
using std_vector_set = seq_range_set<T, std::vector<seq_range<T>>>;

static_assert(vfolder::seq_range_storage<
              boost::container::small_vector<seq_range<std::uint32_t>, 4>, std::uint32_t>);
static_assert(vfolder::seq_range_storage<std::vector<seq_range<std::uint8_t>>, std::uint8_t>);
static_assert(!vfolder::seq_range_storage<std::vector<seq_range<std::uint16_t>>, std::uint32_t>);
static_assert(!vfolder::seq_range_storage<std::list<seq_range<std::uint32_t>>, std::uint32_t>);
static_assert(std::is_same_v<small_vector_set<std::uint16_t, 8>::size_type, std::uint16_t>);
static_assert(std::is_same_v<std_vector_set<std::uint64_t>::value_type, std::uint64_t>);
static_assert(std::is_nothrow_swappable_v<set32>);
static_assert(std::regular<set32>);
static_assert(std::regular<small_vector_set<std::uint8_t, 2>>);
static_assert(ranges::forward_range<std_vector_set<std::uint64_t>::values_view>);
static_assert(ranges::contiguous_range<small_vector_set<std::uint32_t, 4> const&>);
static_assert(set8::max_value == 255 && set16::max_value == 65535);

} // namespace

TEST_CASE("seq_range_set: works with other storage and value types") {
    SUBCASE("uint8_t") { exercise_set<set8>(); }
    SUBCASE("uint16_t") { exercise_set<set16>(); }
    SUBCASE("uint32_t") { exercise_set<set32>(); }
    SUBCASE("uint64_t") { exercise_set<set64>(); }
    SUBCASE("small_vector, uint8_t") { exercise_set<small_vector_set<std::uint8_t, 2>>(); }
    SUBCASE("small_vector, uint16_t") { exercise_set<small_vector_set<std::uint16_t, 8>>(); }
    SUBCASE("small_vector, uint32_t") { exercise_set<small_vector_set<std::uint32_t, 4>>(); }
    SUBCASE("small_vector, uint64_t") { exercise_set<small_vector_set<std::uint64_t, 1>>(); }
    SUBCASE("std::vector, uint8_t") { exercise_set<std_vector_set<std::uint8_t>>(); }
    SUBCASE("std::vector, uint16_t") { exercise_set<std_vector_set<std::uint16_t>>(); }
    SUBCASE("std::vector, uint32_t") { exercise_set<std_vector_set<std::uint32_t>>(); }
    SUBCASE("std::vector, uint64_t") { exercise_set<std_vector_set<std::uint64_t>>(); }
    SUBCASE("mixed storage in set algebra") {
        std_vector_set<std::uint16_t> a{{1, 10}};
        small_vector_set<std::uint16_t, 2> b{{5, 15}};
        seq_range_set<std::uint16_t> c{{8, 8}};
        CHECK(a.merge(b) == 5);
        CHECK(a.intersect(c) == 14);
        CHECK(b.remove_set(a) == 1);
        CHECK(b.have_common(c) == false);
        CHECK(c.merge_n(b, 3) == 3);
        CHECK_SET(a, "[8]");
        CHECK_SET(b, "[5-7],[9-15]");
        CHECK_SET(c, "[5-8]");
    }
}

// ====================================================================== random differential

namespace {

template <class T>
struct random_params {
    std::uint64_t seed;
    std::size_t steps;
    vfolder_test::domain<T> dom;
    std::uint64_t add_len;    // longest add_range
    std::uint64_t remove_len; // longest remove_range
    std::uint64_t model_window; // largest invert window the model computes value by value
};

// One randomized run: apply the same random operation to the set and to the model, then
// compare return values, contents, count() and the invariant after every step.
template <class Set>
void run_random(random_params<typename Set::value_type> const& p) {
    using T = typename Set::value_type;
    using model = naive_set<T>;
    using other_set = seq_range_set<T, boost::container::small_vector<seq_range<T>, 2>>;
    constexpr T mx = Set::max_value;
    vfolder_test::rng g(p.seed);
    auto const& d = p.dom;
    Set s;
    model m;
    std::size_t step = 0;
    int op = -1;
    INFO("seed ", p.seed, ", step ", step, ", op ", op);
    INFO("set: ", format_ranges(s));

    // A random operand (never the whole domain); each use turns it into a Set or an
    // other_set (another storage type) through add_range of its runs.
    auto operand = [&](std::size_t max_ranges, std::uint64_t max_len) {
        model o = vfolder_test::random_model(g, d, max_ranges, max_len);
        if (o.is_whole_domain()) o.remove(d.value(g)); // not storable
        return o;
    };
    // Only a domain of every value of T can fill up: then check each mutation on a copy
    // of the model first, and skip it if it would make the set the whole domain.
    bool const guard_whole = !d.two_windows() && d.lo1 == 0 && d.hi1 == mx;
    // `most` bounds the number of values the mutation can add.
    auto would_be_whole = [&](std::uint64_t most, auto&& f) {
        if (!guard_whole || m.count() + most <= mx) return false;
        model next = m;
        f(next);
        return next.is_whole_domain();
    };

    for (step = 0; step < p.steps; ++step) {
        op = static_cast<int>(g.index(22));
        switch (op) {
        case 0:
        case 1: { // add
            T const v = d.value(g);
            if (would_be_whole(1, [&](model& n) { n.add(v); })) break;
            bool const want = m.add(v);
            REQUIRE(s.add(v) == want);
            break;
        }
        case 2:
        case 3: { // add_range
            auto const r = d.range(g, p.add_len); // no structured binding: Clang 14
            T const a = r.first;                      // cannot capture one in a lambda
            T const b = r.second;
            if (would_be_whole(std::uint64_t{b} - a + 1u, [&](model& n) { n.add_range(a, b); }))
                break;
            auto const want = m.add_range(a, b);
            REQUIRE(std::uint64_t{s.add_range(a, b)} == want);
            break;
        }
        case 4:
        case 5: { // remove
            T const v = (!m.empty() && g.chance(1, 2)) ? *m.nth(g.between(0, m.count() - 1))
                                                       : d.value(g);
            bool const want = m.remove(v);
            REQUIRE(s.remove(v) == want);
            break;
        }
        case 6:
        case 7: { // remove_range: sometimes across both windows
            T a, b;
            if (g.chance(1, 4)) {
                a = d.value(g);
                b = d.value(g);
                if (a > b) std::swap(a, b);
            } else {
                std::tie(a, b) = d.range(g, p.remove_len);
            }
            auto const want = m.remove_range(a, b);
            REQUIRE(std::uint64_t{s.remove_range(a, b)} == want);
            break;
        }
        case 8: { // merge
            model const src = operand(6, p.add_len);
            if (would_be_whole(src.count(), [&](model& n) { n.merge(src); })) break;
            auto const want = m.merge(src);
            if (g.chance(1, 2)) {
                REQUIRE(std::uint64_t{s.merge(vfolder_test::to_set<Set>(src))} == want);
            } else {
                REQUIRE(std::uint64_t{s.merge(vfolder_test::to_set<other_set>(src))} == want);
            }
            break;
        }
        case 9: { // merge_n
            model const src = operand(6, p.add_len);
            std::uint64_t n = std::min<std::uint64_t>(g.between(0, src.count() + 2), mx);
            if (g.chance(1, 16)) n = mx;
            if (would_be_whole(src.count(), [&](model& x) { x.merge_n(src, n); })) break;
            auto const want = m.merge_n(src, n);
            REQUIRE(std::uint64_t{s.merge_n(vfolder_test::to_set<Set>(src), static_cast<T>(n))} ==
                    want);
            break;
        }
        case 10: { // remove_set
            model const src = operand(8, p.remove_len);
            auto const want = m.remove_set(src);
            if (g.chance(1, 2)) {
                REQUIRE(std::uint64_t{s.remove_set(vfolder_test::to_set<Set>(src))} == want);
            } else {
                REQUIRE(std::uint64_t{s.remove_set(vfolder_test::to_set<other_set>(src))} ==
                        want);
            }
            break;
        }
        case 11: { // intersect with a large operand (so that something survives)
            model const src = operand(6, 4 * p.remove_len);
            auto const want = m.intersect(src);
            if (g.chance(1, 2)) {
                REQUIRE(std::uint64_t{s.intersect(vfolder_test::to_set<Set>(src))} == want);
            } else {
                REQUIRE(std::uint64_t{s.intersect(vfolder_test::to_set<other_set>(src))} ==
                        want);
            }
            break;
        }
        case 12: { // self operations
            switch (g.index(4)) {
            case 0: REQUIRE(std::uint64_t{s.merge(s)} == 0u); break;
            case 1: REQUIRE(std::uint64_t{s.intersect(s)} == 0u); break;
            case 2:
                if (g.chance(1, 8)) {
                    REQUIRE(std::uint64_t{s.remove_set(s)} == m.count());
                    m.clear();
                }
                break;
            default: REQUIRE(s.have_common(s) == !m.empty()); break;
            }
            break;
        }
        case 13: { // invert within bounds that hold every member
            T lo, hi;
            if (g.chance(1, 8)) {
                lo = d.min();
                hi = d.max();
            } else {
                lo = g.value(d.min(), m.empty() ? d.max() : m.min());
                hi = g.value(m.empty() ? lo : m.max(), d.max());
            }
            if (m.empty() && lo == 0 && hi == mx) break; // would be the whole domain
            std::uint64_t const window = std::uint64_t{hi} - lo + 1u; // 0: all of uint64
            if (window != 0 && window <= p.model_window) {
                m.invert(lo, hi);
                s.invert(lo, hi);
            } else {
                // Too large for the model: compare the ranges with the complement runs,
                // probe a few values, then invert back.
                s.invert(lo, hi);
                REQUIRE(s.check_invariants());
                REQUIRE(vfolder_test::same_runs(s, m.complement_runs(lo, hi)));
                REQUIRE(std::uint64_t{s.count()} + m.count() == window);
                for (int k = 0; k < 4; ++k) {
                    T const v = k < 2 ? d.value(g) : static_cast<T>(g.next());
                    REQUIRE(s.contains(v) == (lo <= v && v <= hi && !m.contains(v)));
                }
                s.invert(lo, hi);
            }
            break;
        }
        case 14: { // remove_nth
            std::uint64_t const n = std::min<std::uint64_t>(g.between(0, m.count() + 1), mx);
            std::uint64_t k = g.between(0, 40);
            if (g.chance(1, 8)) k = mx;
            m.remove_nth(n, k);
            s.remove_nth(static_cast<T>(n), static_cast<T>(k));
            break;
        }
        case 15:
        case 16: { // bulk insert: small, dense or sparse batch
            std::size_t n = 0;
            std::vector<T> v;
            switch (g.index(3)) {
            case 0: v = vfolder_test::random_values(g, d, g.index(64)); break;
            case 1: { // dense: a narrow window
                n = 64 + g.index(128);
                auto const [a, b] = d.range(g, 2 * n);
                for (std::size_t i = 0; i < n; ++i) v.push_back(g.value(a, b));
                break;
            }
            default: v = vfolder_test::random_values(g, d, 256 + g.index(64)); break;
            }
            if (would_be_whole(v.size(), [&](model& x) { x.insert(v.begin(), v.end()); })) break;
            auto const want = m.insert(v.begin(), v.end());
            switch (g.index(3)) {
            case 0: REQUIRE(std::uint64_t{s.insert(v)} == want); break;
            case 1: REQUIRE(std::uint64_t{s.insert_unsorted(std::span<T>(v))} == want); break;
            default: REQUIRE(std::uint64_t{s.merge(Set::from_values(v))} == want); break;
            }
            break;
        }
        case 17: { // nth, and a cursor over increasing n, then a restart
            std::uint64_t const n = std::min<std::uint64_t>(g.between(0, m.count() + 1), mx);
            REQUIRE(s.nth(static_cast<T>(n)) == m.nth(n));
            auto c = s.cursor();
            std::uint64_t k = g.between(0, 3);
            for (int i = 0; i < 4; ++i, k += g.between(0, 20)) {
                if (k > mx) break;
                REQUIRE(c(static_cast<T>(k)) == m.nth(k));
            }
            REQUIRE(c(static_cast<T>(n)) == m.nth(n));
            break;
        }
        case 18: { // contains, have_common
            for (int i = 0; i < 4; ++i) {
                T const v = d.value(g);
                REQUIRE(s.contains(v) == m.contains(v));
            }
            model const o = operand(4, p.add_len);
            REQUIRE(s.have_common(vfolder_test::to_set<Set>(o)) == m.have_common(o));
            REQUIRE(s.have_common(vfolder_test::to_set<other_set>(o)) == m.have_common(o));
            break;
        }
        case 19: { // copies and equality with the canonical form of the model
            Set const copy = s;
            REQUIRE(copy == s);
            REQUIRE(vfolder_test::to_set<Set>(m) == s);
            REQUIRE(ranges::distance(s.values()) == static_cast<std::ptrdiff_t>(m.count()));
            break;
        }
        case 20: { // values() and for_each_value against the model, sometimes
            if (!g.chance(1, 4)) break;
            auto it = m.values().begin();
            bool same = true;
            for (T v : s.values()) same = same && it != m.values().end() && *it++ == v;
            REQUIRE(same);
            REQUIRE(it == m.values().end());
            it = m.values().begin();
            s.for_each_value([&](T v) { same = same && it != m.values().end() && *it++ == v; });
            REQUIRE(same);
            REQUIRE(it == m.values().end());
            break;
        }
        default: // rarely: start again from an empty set
            if (g.chance(1, 64)) {
                s.clear();
                m.clear();
            }
            break;
        }
        REQUIRE(s.check_invariants());
        REQUIRE(std::uint64_t{s.count()} == m.count());
        REQUIRE(s.empty() == m.empty());
        REQUIRE(vfolder_test::same_values(s, m));
    }
}

template <class T>
vfolder_test::domain<T> window(T lo, T hi) {
    return {lo, hi, lo, hi};
}

} // namespace

TEST_CASE("seq_range_set: random operations agree with a std::set model, values in [0, 1200]") {
    for (std::uint64_t seed : {1u, 2u, 3u, 4u}) {
        run_random<set32>({seed, 100'000, window<std::uint32_t>(0, 1200), 40, 120, 4096});
    }
}

TEST_CASE("seq_range_set: random operations agree with a std::set model, values near MAX") {
    for (std::uint64_t seed : {11u, 12u}) {
        run_random<set32>(
            {seed, 100'000, window<std::uint32_t>(max32 - 1200, max32), 40, 120, 4096});
    }
}

TEST_CASE("seq_range_set: random operations agree with a std::set model, values at 0 and MAX") {
    for (std::uint64_t seed : {21u, 22u}) {
        run_random<set32>({seed, 100'000, {0, 600, max32 - 600, max32}, 30, 100, 4096});
    }
}

TEST_CASE("seq_range_set: random operations agree with a std::set model, uint8_t values") {
    // Every value of the type: the set often gets near the whole domain (never onto it).
    for (std::uint64_t seed : {31u, 32u}) {
        run_random<set8>({seed, 100'000, window<std::uint8_t>(0, 255), 16, 40, 4096});
    }
}

TEST_CASE("seq_range_set: random operations agree with a std::set model, other types") {
    SUBCASE("uint16_t, small_vector storage, both edges") {
        run_random<small_vector_set<std::uint16_t, 4>>(
            {41, 60'000, {0, 300, 65535 - 300, 65535}, 20, 60, 4096});
    }
    SUBCASE("uint64_t, std::vector storage, both edges") {
        run_random<std_vector_set<std::uint64_t>>(
            {51, 60'000, {0, 300, max64 - 300, max64}, 20, 60, 4096});
    }
}
