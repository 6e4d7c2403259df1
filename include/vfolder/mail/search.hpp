/// \file
/// \brief `search_program`: the IMAP SEARCH subset that selects the messages of a virtual
/// folder, parsed once and evaluated per message without allocating.
///
/// Synopsis:
///
///     struct message_meta { flag_set flags; keyword_set const* keywords; mail_time received;
///                           std::uint64_t size; };
///     class search_program {
///         static result<search_program> parse(std::string_view text);
///         bool matches(message_meta const&) const noexcept;
///         bool depends_on_flags() const, depends_on_keywords() const, is_all() const;
///         std::string to_string() const;          // canonical IMAP SEARCH text
///         std::span<search_node const> nodes() const;   // the tree, prefix order
///     };
///
/// Grammar (keys and month names case-insensitive; whitespace is spaces and tabs):
///
///     program  = key { key }                  juxtaposition is AND
///     key      = "all" | "seen" | "unseen" | "answered" | "unanswered" | "flagged"
///              | "unflagged" | "deleted" | "undeleted" | "draft" | "undraft"
///              | ("keyword" | "unkeyword") keyword
///              | ("since" | "before" | "on") date
///              | ("larger" | "smaller") number
///              | "not" key | "or" key key | "(" key { key } ")"
///     keyword  = atom | quoted               an IMAP atom: no ( ) { % * " \ ] SP CTL
///     date     = day "-" month "-" year      1-2 digit day, Jan..Dec, 4-digit year
///              | '"' day "-" month "-" year '"'
///     number   = 1*DIGIT                      fits 64 bits
///
/// Invariant of a parsed program (what makes `to_string()` canonical and `==` structural):
/// an AND node has at least two children and no AND child; parentheses only group.
#pragma once

#include <vfolder/config.hpp>
#include <vfolder/mail/error.hpp>
#include <vfolder/mail/flags.hpp>
#include <vfolder/mail/types.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

VFOLDER_BEGIN_NAMESPACE

/// \brief What a search program looks at in one message.
///
/// `keywords` may be null, which means "no keywords". The pointer is only read during
/// `search_program::matches()`; the caller keeps the set alive for that call.
struct message_meta {
    flag_set flags;                       ///< system flags (`\Recent` is never looked at)
    keyword_set const* keywords = nullptr; ///< keywords, or null for none
    mail_time received{};                 ///< received date (INTERNALDATE), Unix seconds UTC
    std::uint64_t size = 0;               ///< message size in bytes (RFC822.SIZE)
};

/// \brief The kind of one node of a search program.
///
/// The flag keys (`seen` .. `undraft`) read `message_meta::flags`, `keyword`/`unkeyword`
/// read `message_meta::keywords`, the date keys `received`, `larger`/`smaller` `size`.
enum class search_key : std::uint8_t {
    all,
    seen,
    unseen,
    answered,
    unanswered,
    flagged,
    unflagged,
    deleted,
    undeleted,
    draft,
    undraft,
    keyword,   ///< the keyword `search_node::keyword` is set
    unkeyword, ///< the keyword `search_node::keyword` is not set
    since,     ///< received on or after the UTC day `search_node::day`
    before,    ///< received before the UTC day `search_node::day`
    on,        ///< received on the UTC day `search_node::day`
    larger,    ///< size > `search_node::number`
    smaller,   ///< size < `search_node::number`
    op_not,    ///< one child
    op_or,     ///< two children
    op_and,    ///< two or more children, none of them `op_and`
};

/// \brief The canonical (lower-case) IMAP name of `k`; empty for `op_and`, which has no
/// keyword (it is juxtaposition).
[[nodiscard]] constexpr std::string_view key_name(search_key k) noexcept {
    switch (k) {
    case search_key::all: return "all";
    case search_key::seen: return "seen";
    case search_key::unseen: return "unseen";
    case search_key::answered: return "answered";
    case search_key::unanswered: return "unanswered";
    case search_key::flagged: return "flagged";
    case search_key::unflagged: return "unflagged";
    case search_key::deleted: return "deleted";
    case search_key::undeleted: return "undeleted";
    case search_key::draft: return "draft";
    case search_key::undraft: return "undraft";
    case search_key::keyword: return "keyword";
    case search_key::unkeyword: return "unkeyword";
    case search_key::since: return "since";
    case search_key::before: return "before";
    case search_key::on: return "on";
    case search_key::larger: return "larger";
    case search_key::smaller: return "smaller";
    case search_key::op_not: return "not";
    case search_key::op_or: return "or";
    case search_key::op_and: return {};
    }
    return {};
}

/// \brief Whether `k` reads the system flags of a message.
[[nodiscard]] constexpr bool is_flag_key(search_key k) noexcept {
    return k >= search_key::seen && k <= search_key::undraft;
}

/// \brief One node of a search program, stored in prefix order: a node is followed by its
/// children, and `subtree` counts the node and all its descendants, so the next sibling of
/// the node at index `i` is at `i + subtree`.
struct search_node {
    std::uint64_t number = 0;  ///< `larger` / `smaller`: the size in bytes
    std::int64_t day = 0;      ///< date keys: days since 1970-01-01 (UTC calendar day)
    std::uint32_t subtree = 1; ///< number of nodes in this subtree, this one included
    std::uint32_t keyword = 0; ///< `keyword` / `unkeyword`: index into `search_program::keywords()`
    search_key key = search_key::all;
    friend bool operator==(search_node const&, search_node const&) = default;
};

/// \brief Where and why a search program failed to parse (see
/// `search_program::parse_detailed`).
struct search_parse_failure {
    std::size_t position = 0; ///< 1-based byte column; 0 when none applies (an empty program)
    std::string what;         ///< the message, without " at position N"
};

namespace detail {

// Nesting (parentheses, `not`, `or`) is bounded so that neither the recursive-descent
// parser nor the recursive evaluator can overflow the stack on hostile input.
inline constexpr std::size_t search_max_depth = 256;

inline constexpr std::int64_t seconds_per_day = 86400;

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian calendar).
[[nodiscard]] constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
    if (m <= 2) y -= 1;
    std::int64_t const era = (y >= 0 ? y : y - 399) / 400;
    auto const yoe = static_cast<unsigned>(y - era * 400);
    unsigned const doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned const doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct civil_date {
    std::int64_t year;
    unsigned month; // 1..12
    unsigned day;   // 1..31
};

[[nodiscard]] constexpr civil_date civil_from_days(std::int64_t z) noexcept {
    z += 719468;
    std::int64_t const era = (z >= 0 ? z : z - 146096) / 146097;
    auto const doe = static_cast<unsigned>(z - era * 146097);
    unsigned const yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    std::int64_t const y = static_cast<std::int64_t>(yoe) + era * 400;
    unsigned const doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned const mp = (5 * doy + 2) / 153;
    unsigned const d = doy - (153 * mp + 2) / 5 + 1;
    unsigned const m = mp < 10 ? mp + 3 : mp - 9;
    return {m <= 2 ? y + 1 : y, m, d};
}

[[nodiscard]] constexpr bool is_leap_year(std::int64_t y) noexcept {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

[[nodiscard]] constexpr unsigned days_in_month(std::int64_t y, unsigned m) noexcept {
    constexpr unsigned char days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap_year(y) ? 29u : days[m - 1];
}

inline constexpr std::string_view month_names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

[[nodiscard]] constexpr char ascii_lower(char c) noexcept {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

[[nodiscard]] constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return true;
}

[[nodiscard]] constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// IMAP date-text `d-Mon-yyyy` (day 1 or 2 digits) -> days since the epoch.
[[nodiscard]] constexpr std::optional<std::int64_t> parse_imap_date(std::string_view s) noexcept {
    std::size_t const dash1 = s.find('-');
    if (dash1 == std::string_view::npos || dash1 == 0 || dash1 > 2) return std::nullopt;
    unsigned day = 0;
    for (std::size_t i = 0; i < dash1; ++i) {
        if (!is_digit(s[i])) return std::nullopt;
        day = day * 10 + static_cast<unsigned>(s[i] - '0');
    }
    if (s.size() != dash1 + 1 + 3 + 1 + 4 || s[dash1 + 4] != '-') return std::nullopt;
    std::string_view const mon = s.substr(dash1 + 1, 3);
    unsigned month = 0;
    for (unsigned i = 0; i < 12; ++i)
        if (iequals(mon, month_names[i])) month = i + 1;
    if (month == 0) return std::nullopt;
    std::int64_t year = 0;
    for (char c : s.substr(dash1 + 5)) {
        if (!is_digit(c)) return std::nullopt;
        year = year * 10 + (c - '0');
    }
    if (day < 1 || day > days_in_month(year, month)) return std::nullopt;
    return days_from_civil(year, month, day);
}

// Days since the epoch -> `d-Mon-yyyy` (the form parse_imap_date reads back).
inline std::string format_imap_date(std::int64_t days) {
    civil_date const c = civil_from_days(days);
    std::string out = std::to_string(c.day);
    out += '-';
    out += month_names[c.month - 1];
    out += '-';
    std::string y = std::to_string(c.year);
    if (y.size() < 4) out.append(4 - y.size(), '0');
    out += y;
    return out;
}

// The UTC calendar day of a received date (floor division: times before 1970 count too).
[[nodiscard]] constexpr std::int64_t utc_day(mail_time t) noexcept {
    std::int64_t const v = value(t);
    std::int64_t q = v / seconds_per_day;
    if (v % seconds_per_day < 0) --q;
    return q;
}

// IMAP ATOM-CHAR: CHAR except atom-specials ( ) { SP CTL % * " \ ].
[[nodiscard]] constexpr bool is_atom_char(char c) noexcept {
    auto const u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return false;
    switch (c) {
    case '(': case ')': case '{': case '%': case '*': case '"': case '\\': case ']': return false;
    default: return true;
    }
}

[[nodiscard]] constexpr bool is_valid_keyword(std::string_view k) noexcept {
    if (k.empty()) return false;
    for (char c : k)
        if (!is_atom_char(c)) return false;
    return true;
}

// A token or name quoted for an error message, cut so that hostile input cannot make the
// message huge.
inline std::string quote_for_message(std::string_view s) {
    constexpr std::size_t max_len = 40;
    std::string out = "'";
    if (s.size() > max_len) {
        out.append(s.substr(0, max_len));
        out += "...";
    } else {
        out.append(s);
    }
    out += '\'';
    return out;
}

struct search_data {
    std::vector<search_node> nodes;
    std::vector<std::string> keywords;
    bool flags = false;
    bool kws = false;
    friend bool operator==(search_data const& a, search_data const& b) {
        return a.nodes == b.nodes && a.keywords == b.keywords;
    }
};

class search_parser {
public:
    explicit search_parser(std::string_view text) noexcept : text_(text) {}

    // Parses the whole text into `out`; on failure fills `failure` and returns false.
    bool run(search_data& out, search_parse_failure& failure) {
        out_ = &out;
        if (text_.size() >= std::numeric_limits<std::uint32_t>::max()) {
            fail(0, "search program too long");
            return finish(failure);
        }
        token const& t = peek();
        if (failed_) return finish(failure);
        if (t.kind == tok::end) {
            fail(0, "empty search program");
            return finish(failure);
        }
        parse_list(0, nullptr);
        if (!failed_) {
            for (auto const& n : out.nodes) {
                out.flags = out.flags || is_flag_key(n.key);
                out.kws = out.kws || n.key == search_key::keyword || n.key == search_key::unkeyword;
            }
        }
        return finish(failure);
    }

private:
    enum class tok : std::uint8_t { end, lparen, rparen, atom, quoted };
    struct token {
        tok kind = tok::end;
        std::size_t pos = 0;   // 1-based column
        std::string_view raw;  // the token as written
        std::string text;      // atom text, or the unescaped contents of a quoted string
    };

    bool finish(search_parse_failure& failure) {
        if (failed_) failure = std::move(failure_);
        return !failed_;
    }

    bool fail(std::size_t pos, std::string what) {
        if (!failed_) {
            failed_ = true;
            failure_.position = pos;
            failure_.what = std::move(what);
        }
        return false;
    }

    static constexpr bool is_space(char c) noexcept { return c == ' ' || c == '\t'; }
    static constexpr bool is_ctl(char c) noexcept {
        auto const u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f;
    }

    static std::string hex_byte(char c) {
        constexpr char digits[] = "0123456789ABCDEF";
        auto const u = static_cast<unsigned char>(c);
        std::string s = "0x";
        s += digits[u >> 4];
        s += digits[u & 0xf];
        return s;
    }

    token const& peek() {
        if (!have_) {
            lex();
            have_ = true;
        }
        return cur_;
    }
    token take() {
        peek();
        have_ = false;
        return std::move(cur_);
    }

    void lex() {
        cur_ = token{};
        while (at_ < text_.size() && is_space(text_[at_])) ++at_;
        cur_.pos = at_ + 1;
        if (at_ == text_.size()) return;
        std::size_t const start = at_;
        char const c = text_[at_];
        if (is_ctl(c)) {
            fail(cur_.pos, "invalid character " + hex_byte(c));
            return;
        }
        if (c == '(' || c == ')') {
            cur_.kind = c == '(' ? tok::lparen : tok::rparen;
            cur_.raw = text_.substr(at_++, 1);
            return;
        }
        if (c == '"') {
            ++at_;
            while (true) {
                if (at_ == text_.size()) {
                    fail(cur_.pos, "unterminated quoted string");
                    return;
                }
                char const q = text_[at_];
                if (q == '"') break;
                if (q == '\\') {
                    if (at_ + 1 < text_.size() && (text_[at_ + 1] == '"' || text_[at_ + 1] == '\\')) {
                        cur_.text += text_[at_ + 1];
                        at_ += 2;
                        continue;
                    }
                    fail(at_ + 1, "invalid escape in quoted string");
                    return;
                }
                if (is_ctl(q)) {
                    fail(at_ + 1, "invalid character " + hex_byte(q));
                    return;
                }
                cur_.text += q;
                ++at_;
            }
            ++at_;
            cur_.kind = tok::quoted;
            cur_.raw = text_.substr(start, at_ - start);
            return;
        }
        while (at_ < text_.size()) {
            char const a = text_[at_];
            if (is_space(a) || a == '(' || a == ')' || a == '"' || is_ctl(a)) break;
            ++at_;
        }
        cur_.kind = tok::atom;
        cur_.raw = text_.substr(start, at_ - start);
        cur_.text = std::string(cur_.raw);
    }

    std::size_t begin_node(search_key k) {
        out_->nodes.push_back(search_node{});
        out_->nodes.back().key = k;
        return out_->nodes.size() - 1;
    }
    void end_node(std::size_t i) {
        out_->nodes[i].subtree = static_cast<std::uint32_t>(out_->nodes.size() - i);
    }

    // Parses keys up to the end of the text (open == nullptr) or up to the ')' closing
    // `open`. With `inline_into` set, the keys become children of that AND node (a list
    // inside a list: AND is associative); otherwise they form a new node, an AND only if
    // there are two or more.
    bool parse_list(std::size_t depth, token const* open, bool inline_into = false) {
        std::size_t const head = inline_into ? 0 : begin_node(search_key::op_and);
        std::size_t keys = 0; // keys written in this list (merged lists count as one)
        while (true) {
            token const& t = peek();
            if (failed_) return false;
            if (t.kind == tok::end) {
                if (open != nullptr) return fail(open->pos, "unbalanced '('");
                break;
            }
            if (t.kind == tok::rparen) {
                if (open == nullptr) return fail(t.pos, "unexpected ')'");
                if (keys == 0) return fail(open->pos, "empty parenthesised list");
                take();
                break;
            }
            if (!parse_key(depth, "", true)) return false;
            ++keys;
        }
        if (inline_into) return true;
        std::size_t children = 0;
        auto const& nodes = out_->nodes;
        for (std::size_t c = head + 1; c < nodes.size(); c += nodes[c].subtree) ++children;
        if (children == 1) {
            out_->nodes.erase(out_->nodes.begin() + static_cast<std::ptrdiff_t>(head));
        } else {
            end_node(head);
        }
        return true;
    }

    bool parse_number(std::string_view key, token const& k, std::uint64_t& n) {
        token const& t = peek();
        if (failed_) return false;
        if (t.kind != tok::atom && t.kind != tok::quoted)
            return fail(k.pos, "missing argument of " + quote_for_message(key));
        token a = take();
        bool ok = a.kind == tok::atom && !a.text.empty();
        n = 0;
        for (char c : a.text) {
            if (!ok) break;
            if (!is_digit(c)) {
                ok = false;
                break;
            }
            auto const d = static_cast<std::uint64_t>(c - '0');
            if (n > (std::numeric_limits<std::uint64_t>::max() - d) / 10) {
                ok = false;
                break;
            }
            n = n * 10 + d;
        }
        if (!ok) return fail(a.pos, "invalid number " + quote_for_message(a.raw));
        return true;
    }

    bool parse_argument(std::string_view key, token const& k, token& a) {
        token const& t = peek();
        if (failed_) return false;
        if (t.kind != tok::atom && t.kind != tok::quoted)
            return fail(k.pos, "missing argument of " + quote_for_message(key));
        a = take();
        return true;
    }

    // Parses one key. `in_list` tells whether the key is an element of a list (then a
    // parenthesised list is merged into it), `parent` names the operator whose argument
    // this is (for "missing argument" messages).
    bool parse_key(std::size_t depth, std::string_view parent, bool in_list, token const* parent_tok = nullptr) {
        token const& t = peek();
        if (failed_) return false;
        if ((t.kind == tok::end || t.kind == tok::rparen) && parent_tok != nullptr) {
            // Only reached for operator arguments: lists check for these themselves.
            return fail(parent_tok->pos, "missing argument of " + quote_for_message(parent));
        }
        if (depth > search_max_depth)
            return fail(t.pos, "search program nested too deeply (more than " +
                                   std::to_string(search_max_depth) + " levels)");
        if (t.kind == tok::quoted)
            return fail(t.pos, "expected a search key, found a quoted string");
        token k = take();
        if (k.kind == tok::lparen) {
            // A list inside a list merges into it (AND is associative).
            return parse_list(depth + 1, &k, in_list);
        }
        // An atom: the key name.
        static constexpr search_key simple[] = {
            search_key::all,       search_key::seen,       search_key::unseen,
            search_key::answered,  search_key::unanswered, search_key::flagged,
            search_key::unflagged, search_key::deleted,    search_key::undeleted,
            search_key::draft,     search_key::undraft};
        for (search_key s : simple) {
            if (iequals(k.text, key_name(s))) {
                end_node(begin_node(s));
                return true;
            }
        }
        if (iequals(k.text, "not")) {
            std::size_t const i = begin_node(search_key::op_not);
            if (!parse_key(depth + 1, "not", false, &k)) return false;
            end_node(i);
            return true;
        }
        if (iequals(k.text, "or")) {
            std::size_t const i = begin_node(search_key::op_or);
            if (!parse_key(depth + 1, "or", false, &k)) return false;
            if (!parse_key(depth + 1, "or", false, &k)) return false;
            end_node(i);
            return true;
        }
        if (iequals(k.text, "keyword") || iequals(k.text, "unkeyword")) {
            bool const un = ascii_lower(k.text[0]) == 'u';
            token a;
            if (!parse_argument(un ? "unkeyword" : "keyword", k, a)) return false;
            if (!is_valid_keyword(a.text))
                return fail(a.pos, "invalid keyword " + quote_for_message(a.text));
            std::size_t const i = begin_node(un ? search_key::unkeyword : search_key::keyword);
            out_->nodes[i].keyword = static_cast<std::uint32_t>(out_->keywords.size());
            out_->keywords.push_back(std::move(a.text));
            end_node(i);
            return true;
        }
        for (search_key dk : {search_key::since, search_key::before, search_key::on}) {
            if (!iequals(k.text, key_name(dk))) continue;
            token a;
            if (!parse_argument(key_name(dk), k, a)) return false;
            auto const day = parse_imap_date(a.text);
            if (!day) return fail(a.pos, "invalid date " + quote_for_message(a.text));
            std::size_t const i = begin_node(dk);
            out_->nodes[i].day = *day;
            end_node(i);
            return true;
        }
        for (search_key nk : {search_key::larger, search_key::smaller}) {
            if (!iequals(k.text, key_name(nk))) continue;
            std::uint64_t n = 0;
            if (!parse_number(key_name(nk), k, n)) return false;
            std::size_t const i = begin_node(nk);
            out_->nodes[i].number = n;
            end_node(i);
            return true;
        }
        return fail(k.pos, "unknown search key " + quote_for_message(k.raw));
    }

    std::string_view text_;
    std::size_t at_ = 0;
    token cur_;
    bool have_ = false;
    bool failed_ = false;
    search_parse_failure failure_;
    search_data* out_ = nullptr;
};

} // namespace detail

/// \brief A parsed IMAP SEARCH program (the subset of the file comment): an immutable,
/// shared tree, cheap to copy, safe to evaluate from several threads at once.
///
/// Evaluation rules:
/// - Dates compare by **UTC calendar day**: the received time is cut to its day in UTC
///   (`floor(seconds / 86400)`), then `since D` is day >= D, `before D` is day < D,
///   `on D` is day == D. (IMAP leaves the time zone to the server; ours is UTC so that
///   results do not depend on where a program runs.)
/// - `larger N` is size > N and `smaller N` is size < N, strictly, as in IMAP.
/// - `keyword K` compares keyword names exactly (case-sensitively), as `keyword_set` does.
/// - `\Recent` is not a key of the subset; `recent`, `new`, `old` are unknown keys.
///
/// Re-evaluation (SEMANTICS.md §7.9): a change of flags can only change the result when
/// the program mentions a flag key (`seen`, `unseen`, `answered`, `unanswered`, `flagged`,
/// `unflagged`, `deleted`, `undeleted`, `draft`, `undraft`: `depends_on_flags()`) and a
/// change of keywords only when it mentions `keyword`/`unkeyword`
/// (`depends_on_keywords()`). Received date and size never change, so other programs need
/// no re-evaluation after a flag or keyword update.
///
/// A default-constructed program is `all`.
class search_program {
public:
    /// \brief The program `all`.
    search_program() noexcept = default;

    /// \brief The program `all`.
    [[nodiscard]] static search_program all() noexcept { return {}; }

    /// \brief Parses `text` (the grammar in the file comment).
    ///
    /// Returns: the program, or `errc::invalid_argument` with a message naming the 1-based
    /// byte column and what was wrong, e.g. `unknown search key 'foo' at position 1`,
    /// `unexpected ')' at position 7`, `invalid date '31-Foo-2020' at position 7`,
    /// `missing argument of 'larger' at position 8` (the column of the key),
    /// `unbalanced '(' at position 1`, `empty search program`. Nesting of parentheses,
    /// `not` and `or` deeper than 256 levels is refused
    /// (`search program nested too deeply ...`).
    /// Complexity: O(n) in the length of `text` (O(n * 256) in degenerate nestings).
    [[nodiscard]] static result<search_program> parse(std::string_view text) {
        search_parse_failure f;
        auto r = parse_detailed(text, f);
        if (!r) {
            if (f.position != 0) f.what += " at position " + std::to_string(f.position);
            return error{errc::invalid_argument, std::move(f.what)};
        }
        return std::move(*r);
    }

    /// \brief Like `parse`, but on failure returns nullopt and fills `failure` with the
    /// 1-based column (0 if none applies) and the message without " at position N". The
    /// definition parser uses it to map positions to lines and columns.
    [[nodiscard]] static std::optional<search_program> parse_detailed(std::string_view text,
                                                                      search_parse_failure& failure) {
        auto data = std::make_shared<detail::search_data>();
        detail::search_parser p(text);
        if (!p.run(*data, failure)) return std::nullopt;
        search_program s;
        s.data_ = std::move(data);
        return s;
    }

    /// \brief Whether the message `m` matches. Does not allocate.
    /// Precondition: `m.keywords` is null or points to a live set.
    [[nodiscard]] bool matches(message_meta const& m) const noexcept {
        return eval(nodes().data(), m);
    }

    /// \brief Whether any flag key (`seen` .. `undraft`, negated forms included) occurs.
    [[nodiscard]] bool depends_on_flags() const noexcept { return data_ && data_->flags; }
    /// \brief Whether `keyword` or `unkeyword` occurs.
    [[nodiscard]] bool depends_on_keywords() const noexcept { return data_ && data_->kws; }
    /// \brief Whether a flag or keyword change can change the result (SEMANTICS.md §7.9).
    [[nodiscard]] bool depends_on_flags_or_keywords() const noexcept {
        return depends_on_flags() || depends_on_keywords();
    }

    /// \brief Whether the program matches every message, as seen from its structure:
    /// `all`, and `and`/`or`/`not` combinations that reduce to it (`all all`,
    /// `or all seen`, `not not all`). Not a full tautology check: `or seen unseen` is
    /// not detected.
    [[nodiscard]] bool is_all() const noexcept { return truth(nodes().data()) == 1; }

    /// \brief The canonical text: lower-case keys, `d-Mon-yyyy` dates, one space between
    /// keys, parentheses only around AND lists that are an argument of `not`/`or`. It is
    /// valid IMAP SEARCH syntax, and `parse(p.to_string()) == p`.
    [[nodiscard]] std::string to_string() const {
        std::string out;
        print(nodes().data(), out, true);
        return out;
    }

    /// \brief The tree in prefix order (see `search_node`); never empty.
    [[nodiscard]] std::span<search_node const> nodes() const noexcept {
        if (!data_) return {&all_node, 1};
        return data_->nodes;
    }
    /// \brief The keyword names that `search_node::keyword` indexes.
    [[nodiscard]] std::span<std::string const> keywords() const noexcept {
        if (!data_) return {};
        return data_->keywords;
    }

    /// \brief Structural equality (the parsed trees are equal).
    friend bool operator==(search_program const& a, search_program const& b) noexcept {
        if (a.data_ == b.data_) return true;
        auto const an = a.nodes();
        auto const bn = b.nodes();
        if (an.size() != bn.size()) return false;
        for (std::size_t i = 0; i < an.size(); ++i)
            if (!(an[i] == bn[i])) return false;
        auto const ak = a.keywords();
        auto const bk = b.keywords();
        if (ak.size() != bk.size()) return false;
        for (std::size_t i = 0; i < ak.size(); ++i)
            if (ak[i] != bk[i]) return false;
        return true;
    }

private:
    static constexpr search_node all_node{};

    bool eval(search_node const* n, message_meta const& m) const noexcept {
        switch (n->key) {
        case search_key::all: return true;
        case search_key::seen: return m.flags.contains(system_flag::seen);
        case search_key::unseen: return !m.flags.contains(system_flag::seen);
        case search_key::answered: return m.flags.contains(system_flag::answered);
        case search_key::unanswered: return !m.flags.contains(system_flag::answered);
        case search_key::flagged: return m.flags.contains(system_flag::flagged);
        case search_key::unflagged: return !m.flags.contains(system_flag::flagged);
        case search_key::deleted: return m.flags.contains(system_flag::deleted);
        case search_key::undeleted: return !m.flags.contains(system_flag::deleted);
        case search_key::draft: return m.flags.contains(system_flag::draft);
        case search_key::undraft: return !m.flags.contains(system_flag::draft);
        case search_key::keyword: return has_keyword(*n, m);
        case search_key::unkeyword: return !has_keyword(*n, m);
        case search_key::since: return detail::utc_day(m.received) >= n->day;
        case search_key::before: return detail::utc_day(m.received) < n->day;
        case search_key::on: return detail::utc_day(m.received) == n->day;
        case search_key::larger: return m.size > n->number;
        case search_key::smaller: return m.size < n->number;
        case search_key::op_not: return !eval(n + 1, m);
        case search_key::op_or: return eval(n + 1, m) || eval(n + 1 + n[1].subtree, m);
        case search_key::op_and:
            for (search_node const* c = n + 1; c != n + n->subtree; c += c->subtree)
                if (!eval(c, m)) return false;
            return true;
        }
        return false;
    }

    bool has_keyword(search_node const& n, message_meta const& m) const noexcept {
        return m.keywords != nullptr && m.keywords->contains(std::string_view(data_->keywords[n.keyword]));
    }

    // 1: always true, 0: always false, -1: depends on the message.
    static int truth(search_node const* n) noexcept {
        switch (n->key) {
        case search_key::all: return 1;
        case search_key::op_not: {
            int const t = truth(n + 1);
            return t < 0 ? t : 1 - t;
        }
        case search_key::op_or: {
            int const a = truth(n + 1);
            int const b = truth(n + 1 + n[1].subtree);
            if (a == 1 || b == 1) return 1;
            return a == 0 && b == 0 ? 0 : -1;
        }
        case search_key::op_and: {
            int r = 1;
            for (search_node const* c = n + 1; c != n + n->subtree; c += c->subtree) {
                int const t = truth(c);
                if (t == 0) return 0;
                if (t < 0) r = -1;
            }
            return r;
        }
        default: return -1;
        }
    }

    void print(search_node const* n, std::string& out, bool top) const {
        switch (n->key) {
        case search_key::op_and: {
            if (!top) out += '(';
            bool first = true;
            for (search_node const* c = n + 1; c != n + n->subtree; c += c->subtree) {
                if (!first) out += ' ';
                first = false;
                print(c, out, false);
            }
            if (!top) out += ')';
            return;
        }
        case search_key::op_not:
            out += "not ";
            print(n + 1, out, false);
            return;
        case search_key::op_or:
            out += "or ";
            print(n + 1, out, false);
            out += ' ';
            print(n + 1 + n[1].subtree, out, false);
            return;
        case search_key::keyword:
        case search_key::unkeyword:
            out += key_name(n->key);
            out += ' ';
            out += data_->keywords[n->keyword];
            return;
        case search_key::since:
        case search_key::before:
        case search_key::on:
            out += key_name(n->key);
            out += ' ';
            out += detail::format_imap_date(n->day);
            return;
        case search_key::larger:
        case search_key::smaller:
            out += key_name(n->key);
            out += ' ';
            out += std::to_string(n->number);
            return;
        default: out += key_name(n->key); return;
        }
    }

    std::shared_ptr<detail::search_data const> data_;
};

VFOLDER_END_NAMESPACE
