/// \file
/// \brief `folder_definition`: which backend mailboxes a virtual folder draws from and the
/// search program each of them is filtered with, read from Dovecot's `dovecot-virtual`
/// file format or built in code.
///
/// Synopsis:
///
///     struct mailbox_pattern { std::string pattern; bool exclude, save_target, clear_recent;
///                              static result<mailbox_pattern> parse(std::string_view);
///                              bool is_wildcard() const; bool matches(std::string_view) const; };
///     struct definition_group { std::vector<mailbox_pattern> patterns; search_program program; };
///     class folder_definition {
///         static result<folder_definition> parse(std::string_view file_text);
///         static result<folder_definition> make(patterns, std::string_view program);
///         result<void> add_group(patterns, program);
///         std::vector<definition_group> const& groups() const;
///         std::vector<expanded_backend> expand(names, std::string_view self = {}) const;
///         std::string to_text() const;          // parse(to_text()) == *this
///     };
///
/// File format (one definition per file, as Dovecot's `dovecot-virtual`):
///
///     # comment (a '#' in column 1)
///     INBOX
///     Work
///     Lists/*
///     -Lists/spam
///       unseen
///       or flagged keyword $Important
///     !Archive
///       all
///
/// A line that starts with a space or tab is a search program line; consecutive program
/// lines are joined with one space into the program of the patterns above them. The next
/// pattern line after a program starts a new group. Blank lines (empty or only spaces and
/// tabs) and comment lines are ignored everywhere, also between program lines.
#pragma once

#include <vfolder/config.hpp>
#include <vfolder/mail/error.hpp>
#include <vfolder/mail/search.hpp>

#include <boost/container/small_vector.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

VFOLDER_BEGIN_NAMESPACE

/// \brief The hierarchy separator of backend mailbox names (`%` does not match it).
inline constexpr char hierarchy_separator = '/';

class folder_definition;

namespace detail {

// Where and why one line (a pattern, or a definition) failed; column is 1-based.
struct line_failure {
    std::size_t column = 1;
    std::string what;
};

// Index of the first byte that does not start a well-formed UTF-8 sequence (overlong
// forms, surrogates and values above U+10FFFF are not well-formed), or npos.
[[nodiscard]] constexpr std::size_t invalid_utf8_at(std::string_view s) noexcept {
    std::size_t i = 0;
    while (i < s.size()) {
        auto const c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t len = 0;
        std::uint32_t cp = 0;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1Fu;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0Fu;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07u;
        } else {
            return i;
        }
        if (s.size() - i < len) return i;
        for (std::size_t k = 1; k < len; ++k) {
            auto const cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0u) != 0x80u) return i;
            cp = (cp << 6) | (cc & 0x3Fu);
        }
        if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return i;
        if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return i;
        i += len;
    }
    return std::string_view::npos;
}

[[nodiscard]] constexpr bool is_blank(char c) noexcept { return c == ' ' || c == '\t'; }

[[nodiscard]] constexpr std::string_view trim_right(std::string_view s) noexcept {
    while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
    return s;
}

[[nodiscard]] constexpr bool has_wildcard(std::string_view s) noexcept {
    return s.find_first_of("*%") != std::string_view::npos;
}

// `*` matches any string, `%` any string without the hierarchy separator, every other
// byte itself. A set-of-states simulation (the pattern is the automaton): O(|p| * |n|)
// time whatever the pattern, where the textbook backtracking matcher is exponential on
// `*a*a*a*...b`. State j means "the first j pattern bytes match the text read so far".
[[nodiscard]] inline bool glob_match(std::string_view p, std::string_view name) {
    std::size_t const m = p.size();
    boost::container::small_vector<unsigned char, 128> cur(m + 1, 0), nxt(m + 1, 0);
    auto const close = [&](auto& states) {
        // A wildcard also matches the empty string: state j reaches j + 1 for free.
        for (std::size_t j = 0; j < m; ++j)
            if (states[j] && (p[j] == '*' || p[j] == '%')) states[j + 1] = 1;
    };
    cur[0] = 1;
    close(cur);
    for (char const c : name) {
        bool any = false;
        std::fill(nxt.begin(), nxt.end(), static_cast<unsigned char>(0));
        for (std::size_t j = 0; j < m; ++j) {
            if (!cur[j]) continue;
            char const pc = p[j];
            if (pc == '*' || (pc == '%' && c != hierarchy_separator)) {
                nxt[j] = 1;
                any = true;
            } else if (pc != '%' && pc == c) {
                nxt[j + 1] = 1;
                any = true;
            }
        }
        if (!any) return false;
        close(nxt);
        cur.swap(nxt);
    }
    return cur[m] != 0;
}

} // namespace detail

/// \brief One mailbox pattern line of a definition: a name or a wildcard pattern, with the
/// attributes of its prefix character.
///
/// Text form: an optional prefix character, then the pattern. Only the first character is
/// a prefix (as in Dovecot): `-` excludes what the pattern matches from the wildcard
/// matches, `!` marks the mailbox that saves (APPEND/COPY into the view) go to, `+` is
/// Dovecot's "clear \Recent in the backend" mark. `!` and `+` are kept as attributes and
/// not interpreted here. After a `!` the name is literal (Dovecot: the save mailbox is
/// never a wildcard). A pattern equal to `INBOX` in any case is stored as `INBOX` (IMAP's
/// INBOX is case-insensitive); every other name matches case-sensitively.
struct mailbox_pattern {
    std::string pattern;      ///< the name or pattern, without the prefix
    bool exclude = false;     ///< `-` prefix
    bool save_target = false; ///< `!` prefix
    bool clear_recent = false; ///< `+` prefix

    /// \brief Parses one pattern (the text of a pattern line, prefix included).
    ///
    /// Errors (`errc::invalid_argument`, with "column C: "): an empty pattern, leading or
    /// trailing whitespace, a first character `#` (a comment in a file), a pattern
    /// starting with `/` (Dovecot's metadata entries, not supported), control
    /// characters, and bytes that are not UTF-8.
    [[nodiscard]] static result<mailbox_pattern> parse(std::string_view text) {
        mailbox_pattern p;
        detail::line_failure f;
        if (!parse_into(text, p, f)) {
            return error{errc::invalid_argument, "column " + std::to_string(f.column) + ": " + f.what};
        }
        return p;
    }

    /// \brief Whether the pattern has wildcards (`*` or `%`); a `!` pattern never does.
    [[nodiscard]] bool is_wildcard() const noexcept {
        return !save_target && detail::has_wildcard(pattern);
    }

    /// \brief Whether `name` matches the pattern text (whatever `exclude` says): `*`
    /// matches any characters, `%` any characters but `/`; a literal name matches itself.
    /// Complexity: O(|pattern| * |name|) at worst, never exponential.
    [[nodiscard]] bool matches(std::string_view name) const {
        if (!is_wildcard()) return name == pattern;
        return detail::glob_match(pattern, name);
    }

    /// \brief The text form, prefix included (what `parse` reads back).
    [[nodiscard]] std::string to_text() const {
        std::string out;
        if (exclude) out += '-';
        if (save_target) out += '!';
        if (clear_recent) out += '+';
        out += pattern;
        return out;
    }

    friend bool operator==(mailbox_pattern const&, mailbox_pattern const&) = default;

private:
    friend class folder_definition;

    // Shared by parse() and the file parser, which adds the line number.
    static bool parse_into(std::string_view text, mailbox_pattern& out, detail::line_failure& f) {
        out = mailbox_pattern{};
        auto const failed = [&f](std::size_t column, std::string what) {
            f.column = column;
            f.what = std::move(what);
            return false;
        };
        if (text.empty()) return failed(1, "empty mailbox pattern");
        std::size_t off = 0;
        switch (text[0]) {
        case '-': out.exclude = true; off = 1; break;
        case '!': out.save_target = true; off = 1; break;
        case '+': out.clear_recent = true; off = 1; break;
        case '#': return failed(1, "a mailbox pattern cannot start with '#' (a comment line)");
        default: break;
        }
        std::string_view name = text.substr(off);
        if (name.empty()) return failed(off + 1, "empty mailbox pattern after '" + std::string(text.substr(0, 1)) + "'");
        if (detail::is_blank(name.front())) return failed(off + 1, "mailbox pattern starts with whitespace");
        if (detail::is_blank(name.back())) return failed(text.size(), "mailbox pattern ends with whitespace");
        if (name.front() == '/')
            return failed(off + 1, "metadata entries ('/...') are not supported");
        for (std::size_t i = 0; i < name.size(); ++i) {
            auto const u = static_cast<unsigned char>(name[i]);
            if (u < 0x20 || u == 0x7f) {
                constexpr char digits[] = "0123456789ABCDEF";
                std::string what = "invalid character 0x";
                what += digits[u >> 4];
                what += digits[u & 0xf];
                what += " in mailbox pattern";
                return failed(off + i + 1, std::move(what));
            }
        }
        if (auto const bad = detail::invalid_utf8_at(name); bad != std::string_view::npos)
            return failed(off + bad + 1, "mailbox pattern is not valid UTF-8");
        out.pattern = detail::iequals(name, "INBOX") ? std::string("INBOX") : std::string(name);
        return true;
    }
};

/// \brief Patterns that share one search program.
struct definition_group {
    std::vector<mailbox_pattern> patterns;
    search_program program;
    friend bool operator==(definition_group const&, definition_group const&) = default;
};

/// \brief One backend mailbox of an expanded definition.
struct expanded_backend {
    std::string name;         ///< the backend mailbox name
    std::size_t group = 0;    ///< index into `folder_definition::groups()`: its search program
    std::size_t pattern = 0;  ///< index into that group's `patterns`: the pattern that matched
    bool wildcard = false;    ///< matched through a wildcard pattern (else named explicitly)
    friend bool operator==(expanded_backend const&, expanded_backend const&) = default;
};

/// \brief A virtual folder definition: groups of mailbox patterns, each with its search
/// program, in the order written.
///
/// Invariant: every group has at least one pattern; at most one pattern in the whole
/// definition has `save_target`; every pattern reads back from its `to_text()`.
class folder_definition {
public:
    /// \brief An empty definition (no groups); `expand` of it is empty.
    folder_definition() = default;

    /// \brief Parses a definition file (format in the file comment).
    ///
    /// Returns: the definition, or `errc::invalid_argument` with
    /// `line L, column C: <what>`. Search program errors are mapped to the line and
    /// column in the file (`line 3, column 9: unknown search key 'foo'`). Other errors:
    /// `search program line before any mailbox pattern`,
    /// `mailbox pattern without a search program (...)`, `no mailboxes defined`,
    /// `more than one save mailbox ('!')`, and the pattern errors of
    /// `mailbox_pattern::parse`. Lines may end in CRLF.
    /// Complexity: linear in the size of the text.
    [[nodiscard]] static result<folder_definition> parse(std::string_view text);

    /// \brief A definition of one group: `patterns` in text form (prefixes allowed), and
    /// the search program text. Example: `make({"INBOX", "Work", "Lists*"}, "unseen")`.
    /// Errors: as `add_group`.
    [[nodiscard]] static result<folder_definition> make(std::initializer_list<std::string_view> patterns,
                                                        std::string_view program) {
        return make<std::initializer_list<std::string_view>>(patterns, program);
    }
    /// \brief `make` over any range of strings.
    template <class Strings>
        requires requires(Strings const& s) {
            { *std::begin(s) } -> std::convertible_to<std::string_view>;
            std::end(s);
        }
    [[nodiscard]] static result<folder_definition> make(Strings const& patterns, std::string_view program) {
        folder_definition d;
        if (auto r = d.add_group(patterns, program); !r) return std::move(r).error_value();
        return d;
    }

    /// \brief Appends a group.
    ///
    /// Errors (`errc::invalid_argument`, the definition is unchanged): no patterns
    /// (`a group needs at least one mailbox pattern`); `pattern N: ...` (1-based) when a
    /// pattern has more than one attribute, starts with a prefix character without the
    /// attribute, or is not valid by `mailbox_pattern::parse`; a second save mailbox.
    /// A pattern equal to `INBOX` in any case is stored as `INBOX`.
    result<void> add_group(std::vector<mailbox_pattern> patterns, search_program program) {
        if (patterns.empty()) return error{errc::invalid_argument, "a group needs at least one mailbox pattern"};
        bool save = save_target() != nullptr;
        for (std::size_t i = 0; i < patterns.size(); ++i) {
            auto& p = patterns[i];
            auto const fail = [i](std::string what) {
                return error{errc::invalid_argument, "pattern " + std::to_string(i + 1) + ": " + std::move(what)};
            };
            if (int(p.exclude) + int(p.save_target) + int(p.clear_recent) > 1)
                return fail("at most one of exclude, save_target, clear_recent can be set");
            if (!p.exclude && !p.save_target && !p.clear_recent && !p.pattern.empty() &&
                (p.pattern[0] == '-' || p.pattern[0] == '!' || p.pattern[0] == '+'))
                return fail(detail::quote_for_message(p.pattern) +
                            " starts with a prefix character; set the attribute instead");
            if (detail::iequals(p.pattern, "INBOX")) p.pattern = "INBOX";
            auto back = mailbox_pattern::parse(p.to_text());
            if (!back) return fail(back.error_value().message);
            if (!(*back == p)) return fail(detail::quote_for_message(p.to_text()) + " does not read back as itself");
            if (p.save_target) {
                if (save) return fail("more than one save mailbox ('!')");
                save = true;
            }
        }
        groups_.push_back(definition_group{std::move(patterns), std::move(program)});
        return {};
    }

    /// \brief Appends a group from patterns in text form and a search program text.
    /// Errors: as the other overload, and `pattern N: column C: ...`,
    /// `search program: ...` for text that does not parse.
    template <class Strings>
        requires requires(Strings const& s) {
            { *std::begin(s) } -> std::convertible_to<std::string_view>;
            std::end(s);
        }
    result<void> add_group(Strings const& patterns, std::string_view program) {
        std::vector<mailbox_pattern> ps;
        std::size_t i = 0;
        for (auto const& text : patterns) {
            ++i;
            auto p = mailbox_pattern::parse(std::string_view(text));
            if (!p) {
                return error{errc::invalid_argument,
                             "pattern " + std::to_string(i) + ": " + p.error_value().message};
            }
            ps.push_back(std::move(*p));
        }
        auto prog = search_program::parse(program);
        if (!prog) return error{errc::invalid_argument, "search program: " + prog.error_value().message};
        return add_group(std::move(ps), std::move(*prog));
    }
    /// \brief `add_group({"INBOX", "-Spam"}, "unseen")`.
    result<void> add_group(std::initializer_list<std::string_view> patterns, std::string_view program) {
        return add_group<std::initializer_list<std::string_view>>(patterns, program);
    }

    /// \brief The groups in the order written.
    [[nodiscard]] std::vector<definition_group> const& groups() const noexcept { return groups_; }
    [[nodiscard]] bool empty() const noexcept { return groups_.empty(); }

    /// \brief The `!` pattern, or null when there is none.
    [[nodiscard]] mailbox_pattern const* save_target() const noexcept {
        for (auto const& g : groups_)
            for (auto const& p : g.patterns)
                if (p.save_target) return &p;
        return nullptr;
    }

    /// \brief The backends of the folder, given the names of the mailboxes that exist.
    ///
    /// `names` may be in any order and hold duplicates; `self` (the virtual folder's own
    /// name, if it is listed among `names`) is never a backend. The result holds:
    /// 1. the explicitly named (non-wildcard, non-`-`) patterns that exist, in the order
    ///    written;
    /// 2. then the names that match a wildcard pattern and no `-` pattern, in bytewise name
    ///    order; each is attributed to the first wildcard pattern (in definition order)
    ///    that matches it.
    /// Each name appears once: a name written twice keeps its first place, a name that is
    /// both written and matched by a wildcard is in part 1. As in Dovecot, `-` patterns
    /// only filter wildcard matches: a name written explicitly is kept. A written name
    /// that does not exist is skipped. The order is what numbers the backends
    /// (SCENARIOS.md, "World at start").
    /// Complexity: O(N log N + N * P * cost of a match) for N names and P patterns.
    template <class Names>
        requires requires(Names const& s) {
            { *std::begin(s) } -> std::convertible_to<std::string_view>;
            std::end(s);
        }
    [[nodiscard]] std::vector<expanded_backend> expand(Names const& names, std::string_view self = {}) const {
        std::vector<std::string_view> sorted;
        for (auto const& n : names) sorted.emplace_back(std::string_view(n));
        return expand_names(std::move(sorted), self);
    }
    /// \brief `expand({"INBOX", "Work"})`.
    [[nodiscard]] std::vector<expanded_backend> expand(std::initializer_list<std::string_view> names,
                                                       std::string_view self = {}) const {
        return expand_names(std::vector<std::string_view>(names), self);
    }

    /// \brief The definition in file form: each group's patterns, one per line, then its
    /// program on one line indented by two spaces. `parse(d.to_text()) == d`.
    [[nodiscard]] std::string to_text() const {
        std::string out;
        for (auto const& g : groups_) {
            for (auto const& p : g.patterns) {
                out += p.to_text();
                out += '\n';
            }
            out += "  ";
            out += g.program.to_string();
            out += '\n';
        }
        return out;
    }

    friend bool operator==(folder_definition const&, folder_definition const&) = default;

private:
    std::vector<expanded_backend> expand_names(std::vector<std::string_view> sorted, std::string_view self) const {
        std::sort(sorted.begin(), sorted.end());
        sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
        auto const exists = [&](std::string_view n) {
            return std::binary_search(sorted.begin(), sorted.end(), n);
        };

        std::vector<expanded_backend> out;
        std::vector<std::pair<std::size_t, std::size_t>> wild, excl;
        std::vector<std::string_view> named; // explicit names taken, for the wildcard pass
        for (std::size_t g = 0; g < groups_.size(); ++g) {
            auto const& ps = groups_[g].patterns;
            for (std::size_t i = 0; i < ps.size(); ++i) {
                auto const& p = ps[i];
                if (p.exclude) {
                    excl.emplace_back(g, i);
                } else if (p.is_wildcard()) {
                    wild.emplace_back(g, i);
                } else if (p.pattern != self && exists(p.pattern)) {
                    out.push_back(expanded_backend{p.pattern, g, i, false});
                    named.push_back(p.pattern);
                }
            }
        }
        // A name written twice keeps its first place: stable-sort the positions by name
        // and drop every later duplicate.
        if (out.size() > 1) {
            std::vector<std::size_t> idx(out.size());
            for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
            std::stable_sort(idx.begin(), idx.end(),
                             [&](std::size_t a, std::size_t b) { return out[a].name < out[b].name; });
            std::vector<bool> drop(out.size(), false);
            for (std::size_t k = 1; k < idx.size(); ++k)
                if (out[idx[k]].name == out[idx[k - 1]].name) drop[idx[k]] = true;
            std::size_t w = 0;
            for (std::size_t r = 0; r < out.size(); ++r)
                if (!drop[r]) {
                    if (w != r) out[w] = std::move(out[r]);
                    ++w;
                }
            out.resize(w);
        }
        std::sort(named.begin(), named.end());

        if (wild.empty()) return out;
        for (std::string_view n : sorted) {
            if (n == self || std::binary_search(named.begin(), named.end(), n)) continue;
            auto const pat = [&](std::pair<std::size_t, std::size_t> gi) -> mailbox_pattern const& {
                return groups_[gi.first].patterns[gi.second];
            };
            auto const hit = std::find_if(wild.begin(), wild.end(), [&](auto gi) { return pat(gi).matches(n); });
            if (hit == wild.end()) continue;
            if (std::any_of(excl.begin(), excl.end(), [&](auto gi) { return pat(gi).matches(n); })) continue;
            out.push_back(expanded_backend{std::string(n), hit->first, hit->second, true});
        }
        return out;
    }

    std::vector<definition_group> groups_;
};

inline result<folder_definition> folder_definition::parse(std::string_view text) {
    auto const fail = [](std::size_t line, std::size_t column, std::string_view what) {
        return error{errc::invalid_argument,
                     "line " + std::to_string(line) + ", column " + std::to_string(column) + ": " + std::string(what)};
    };
    // One program line's place in the joined program text, to map error positions back.
    struct piece {
        std::size_t offset; // in the joined text, 0-based
        std::size_t length;
        std::size_t line;
        std::size_t column; // 1-based column of its first byte in the file
    };
    folder_definition def;
    std::vector<mailbox_pattern> patterns;
    std::size_t last_pattern_line = 0;
    std::string program;
    std::vector<piece> pieces;
    bool have_save = false;

    // Closes the pending group (patterns + program); returns an error on a bad program.
    auto const close_group = [&]() -> std::optional<error> {
        search_parse_failure f;
        auto prog = search_program::parse_detailed(program, f);
        if (!prog) {
            std::size_t const at = f.position == 0 ? 0 : f.position - 1;
            piece const* pc = &pieces.front();
            for (auto const& p : pieces)
                if (p.offset <= at) pc = &p;
            std::size_t const column = pc->column + std::min(at - pc->offset, pc->length);
            return fail(pc->line, column, f.what);
        }
        def.groups_.push_back(definition_group{std::move(patterns), std::move(*prog)});
        patterns.clear();
        program.clear();
        pieces.clear();
        return std::nullopt;
    };

    std::size_t line_no = 0;
    std::size_t pos = 0;
    std::size_t end_line = 1, end_column = 1;
    while (pos < text.size()) {
        std::size_t const nl = text.find('\n', pos);
        std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        end_line = nl == std::string_view::npos ? line_no : line_no + 1;
        end_column = nl == std::string_view::npos ? line.size() + 1 : 1;
        if (line.empty() || line[0] == '#') continue;
        if (detail::is_blank(line[0])) {
            std::size_t first = 0;
            while (first < line.size() && detail::is_blank(line[first])) ++first;
            std::string_view const content = detail::trim_right(line.substr(first));
            if (content.empty()) continue; // a blank line
            if (patterns.empty())
                return fail(line_no, first + 1, "search program line before any mailbox pattern");
            if (!program.empty()) program += ' ';
            pieces.push_back(piece{program.size(), content.size(), line_no, first + 1});
            program += content;
            continue;
        }
        if (!program.empty()) {
            if (auto e = close_group()) return std::move(*e);
        }
        mailbox_pattern p;
        detail::line_failure f;
        if (!mailbox_pattern::parse_into(detail::trim_right(line), p, f)) return fail(line_no, f.column, f.what);
        if (p.save_target) {
            if (have_save) return fail(line_no, 1, "more than one save mailbox ('!')");
            have_save = true;
        }
        patterns.push_back(std::move(p));
        last_pattern_line = line_no;
    }
    if (!patterns.empty()) {
        if (program.empty())
            return fail(last_pattern_line, 1,
                        "mailbox pattern without a search program (expected an indented program line)");
        if (auto e = close_group()) return std::move(*e);
    }
    if (def.groups_.empty()) return fail(end_line, end_column, "no mailboxes defined");
    return def;
}

VFOLDER_END_NAMESPACE
