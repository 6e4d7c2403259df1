/// \file
/// \brief `backend_registry`: creates backends from URIs by scheme (`mem:NAME`,
/// `mmap:PATH`, your own), in the spirit of mapistore's backend table: each scheme has a
/// name, a description, a namespace, a one-time init and a create function.
///
/// \code
///   vfolder::backend_registry reg;
///   vfolder::memory_world world;
///   vfolder::add_memory_scheme(reg, world);          // "mem:" -> memory_backend
///   auto b = reg.create("mem:INBOX");                 // result<any_backend>
/// \endcode
///
/// A scheme's init runs once, before its first create; if it fails, the create fails with
/// init's error and the next create tries init again. Lifetimes are RAII: the registry owns
/// its scheme table; what a factory captures (a world, a root directory) must outlive it.
#pragma once

#include <vfolder/any_backend.hpp>
#include <vfolder/mail/error.hpp>

#include <algorithm>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

VFOLDER_BEGIN_NAMESPACE

/// \brief What the registry tells about a scheme.
struct backend_scheme_info {
    std::string scheme;       ///< e.g. "mem" (URIs are "mem:...")
    std::string description;  ///< for people
    std::string name_space;   ///< the namespace the backends live in, e.g. "memory://"
};

class backend_registry {
public:
    /// \brief Creates a backend from the part of the URI after "scheme:".
    using create_fn = std::function<result<any_backend>(std::string_view rest)>;
    /// \brief One-time initialisation of a scheme.
    using init_fn = std::function<result<void>()>;

    /// \brief Registers a scheme. Fails with `already_exists` if it is registered, with
    /// `invalid_argument` if the scheme is empty or contains ':' or the factory is empty.
    result<void> add(backend_scheme_info info, create_fn create, init_fn init = {}) {
        if (info.scheme.empty() || info.scheme.find(':') != std::string::npos || !create)
            return error{errc::invalid_argument, "invalid backend scheme '" + info.scheme + "'"};
        if (find(info.scheme))
            return error{errc::already_exists, "backend scheme '" + info.scheme + "' is already registered"};
        entries_.push_back({std::move(info), std::move(create), std::move(init), false});
        return {};
    }

    /// \brief Removes a scheme. Returns false if it was not registered.
    bool remove(std::string_view scheme) {
        auto it = std::find_if(entries_.begin(), entries_.end(),
                               [&](entry const& e) { return e.info.scheme == scheme; });
        if (it == entries_.end()) return false;
        entries_.erase(it);
        return true;
    }

    /// \brief Creates the backend named by `uri` ("scheme:rest"). Errors:
    /// `invalid_argument` for a URI without a scheme, `not_found` for an unknown scheme,
    /// else whatever init or the factory returns.
    result<any_backend> create(std::string_view uri) {
        auto const colon = uri.find(':');
        if (colon == std::string_view::npos || colon == 0)
            return error{errc::invalid_argument, "backend URI '" + std::string(uri) + "' has no scheme"};
        entry* e = find(uri.substr(0, colon));
        if (!e)
            return error{errc::not_found, "unknown backend scheme '" + std::string(uri.substr(0, colon)) + "'"};
        if (!e->initialised) {
            if (e->init) {
                if (auto r = e->init(); !r) return std::move(r).error_value();
            }
            e->initialised = true;
        }
        return e->create(uri.substr(colon + 1));
    }

    /// \brief The registered schemes, in registration order.
    [[nodiscard]] std::vector<backend_scheme_info> schemes() const {
        std::vector<backend_scheme_info> out;
        for (auto const& e : entries_) out.push_back(e.info);
        return out;
    }

    /// \brief Whether `scheme` is registered.
    [[nodiscard]] bool contains(std::string_view scheme) const {
        return std::any_of(entries_.begin(), entries_.end(),
                           [&](entry const& e) { return e.info.scheme == scheme; });
    }

private:
    struct entry {
        backend_scheme_info info;
        create_fn create;
        init_fn init;
        bool initialised;
    };
    entry* find(std::string_view scheme) {
        for (auto& e : entries_)
            if (e.info.scheme == scheme) return &e;
        return nullptr;
    }
    std::vector<entry> entries_;
};

VFOLDER_END_NAMESPACE
