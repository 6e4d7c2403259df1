/// \file
/// \brief Errors as values: `vfolder::errc`, its `std::error_category`, `error` (code +
/// message naming its context) and `result<T>`.
///
/// Expected failures (a backend mailbox gone, a permission problem, a corrupt file) are
/// returned, never thrown. Only `std::bad_alloc` propagates.
#pragma once

#include <vfolder/config.hpp>

#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

VFOLDER_BEGIN_NAMESPACE

/// \brief The failures the engine must tell apart.
enum class errc : int {
    not_found = 1,      ///< the mailbox (or message) does not exist: "deleted, treat as empty"
    permission,         ///< access denied: a wildcard-matched backend is skipped
    temporary,          ///< try again later (lock timeout, network)
    not_possible,       ///< the operation cannot be done on this object (e.g. folder loop)
    corrupted,          ///< stored data failed validation
    io,                 ///< an I/O error (read, write, fsync, ENOSPC)
    invalid_argument,   ///< malformed input (a search program, a definition, a URI)
    already_exists,     ///< create of something that exists
    unsupported,        ///< a feature the backend or store does not offer
    /// A backend's incremental answers cannot be trusted: its state went back or was
    /// replaced behind a reader (e.g. an index file restored from a copy). The data it
    /// now serves is valid, but "changed since X" would miss changes: compare in full.
    inconsistent,
};

namespace detail {
class errc_category_impl final : public std::error_category {
public:
    [[nodiscard]] char const* name() const noexcept override { return "vfolder"; }
    [[nodiscard]] std::string message(int c) const override {
        switch (static_cast<errc>(c)) {
        case errc::not_found: return "not found";
        case errc::permission: return "permission denied";
        case errc::temporary: return "temporary failure";
        case errc::not_possible: return "not possible";
        case errc::corrupted: return "corrupted";
        case errc::io: return "I/O error";
        case errc::invalid_argument: return "invalid argument";
        case errc::already_exists: return "already exists";
        case errc::unsupported: return "unsupported";
        case errc::inconsistent: return "inconsistent state";
        }
        return "unknown vfolder error";
    }
};
} // namespace detail

/// \brief The `std::error_category` of `vfolder::errc` (name "vfolder").
[[nodiscard]] inline std::error_category const& error_category() noexcept {
    static detail::errc_category_impl const c;
    return c;
}

[[nodiscard]] inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), error_category()};
}

/// \brief An error: a code to branch on and a message for people, which names its
/// context, e.g. "Mailbox doesn't exist (for backend mailbox Work)".
struct error {
    std::error_code code;
    std::string message;

    error() = default;
    error(std::error_code c, std::string msg) : code(c), message(std::move(msg)) {}
    error(errc c, std::string msg) : code(make_error_code(c)), message(std::move(msg)) {}

    /// \brief Appends " (context)" to the message; returns *this for chaining.
    error& with_context(std::string_view context) & {
        message.append(" (").append(context).append(")");
        return *this;
    }
    [[nodiscard]] error&& with_context(std::string_view context) && {
        return std::move(with_context(context));
    }
    /// \brief Whether the code is `e`.
    [[nodiscard]] bool is(errc e) const noexcept { return code == make_error_code(e); }
    friend bool operator==(error const& a, error const& b) = default;
};

/// \brief Either a value or an `error` (C++20 stand-in for `std::expected<T, error>`).
template <class T>
class [[nodiscard]] result {
    static_assert(!std::is_same_v<std::remove_cv_t<T>, error>, "result<error> is ambiguous");

public:
    using value_type = T;
    using error_type = error;

    result(T v) : v_(std::in_place_index<0>, std::move(v)) {}       // NOLINT: implicit
    result(error e) : v_(std::in_place_index<1>, std::move(e)) {}   // NOLINT: implicit

    [[nodiscard]] bool has_value() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    /// \brief The value. Precondition: `has_value()`.
    [[nodiscard]] T& value() & noexcept { return check_value(), *std::get_if<0>(&v_); }
    [[nodiscard]] T const& value() const& noexcept { return check_value(), *std::get_if<0>(&v_); }
    [[nodiscard]] T&& value() && noexcept { return check_value(), std::move(*std::get_if<0>(&v_)); }
    [[nodiscard]] T& operator*() & noexcept { return value(); }
    [[nodiscard]] T const& operator*() const& noexcept { return value(); }
    [[nodiscard]] T* operator->() noexcept { return &value(); }
    [[nodiscard]] T const* operator->() const noexcept { return &value(); }

    /// \brief The error. Precondition: `!has_value()`.
    [[nodiscard]] error const& error_value() const& noexcept {
        VFOLDER_ASSERT(!has_value(), "result::error_value() on a value");
        return *std::get_if<1>(&v_);
    }
    [[nodiscard]] error&& error_value() && noexcept {
        VFOLDER_ASSERT(!has_value(), "result::error_value() on a value");
        return std::move(*std::get_if<1>(&v_));
    }

private:
    void check_value() const noexcept { VFOLDER_ASSERT(has_value(), "result::value() on an error"); }
    std::variant<T, error> v_;
};

/// \brief The result of an operation with no value: success, or an error.
template <>
class [[nodiscard]] result<void> {
public:
    using value_type = void;
    using error_type = error;

    result() = default;
    result(error e) : e_(std::move(e)), failed_(true) {} // NOLINT: implicit
    [[nodiscard]] bool has_value() const noexcept { return !failed_; }
    explicit operator bool() const noexcept { return !failed_; }
    [[nodiscard]] error const& error_value() const& noexcept {
        VFOLDER_ASSERT(failed_, "result<void>::error_value() on success");
        return e_;
    }
    [[nodiscard]] error&& error_value() && noexcept { return std::move(e_); }

private:
    error e_;
    bool failed_ = false;
};

VFOLDER_END_NAMESPACE

template <>
struct std::is_error_code_enum<vfolder::errc> : std::true_type {};
