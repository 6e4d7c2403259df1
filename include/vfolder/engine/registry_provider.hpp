/// \file
/// \brief `registry_provider`: a folder's backend provider over a `backend_registry`, so
/// one folder can draw from backends of mixed types (each made from a URI, type-erased
/// as `any_backend`).
#pragma once

#include <vfolder/engine/folder.hpp>
#include <vfolder/registry.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

VFOLDER_BEGIN_NAMESPACE

/// \brief Lists mailbox names with `lister` and makes each backend as
/// `registry.create(uri_of(name))`; by default the URI is `scheme:name`.
class registry_provider {
public:
    using lister_fn = std::function<std::vector<std::string>()>;
    using uri_fn = std::function<std::string(std::string_view name)>;

    /// \brief Names from `lister`; backend of `name` from URI `scheme:name`.
    registry_provider(backend_registry& registry, std::string scheme, lister_fn lister)
        : reg_(&registry), lister_(std::move(lister)),
          uri_([s = std::move(scheme)](std::string_view name) { return s + ":" + std::string(name); }) {}

    /// \brief Names from `lister`; backend of `name` from URI `uri_of(name)` (mix schemes).
    registry_provider(backend_registry& registry, lister_fn lister, uri_fn uri_of)
        : reg_(&registry), lister_(std::move(lister)), uri_(std::move(uri_of)) {}

    [[nodiscard]] std::vector<std::string> list() const { return lister_ ? lister_() : std::vector<std::string>{}; }
    result<any_backend> make(std::string_view name) const { return reg_->create(uri_(name)); }

private:
    backend_registry* reg_;
    lister_fn lister_;
    uri_fn uri_;
};

static_assert(backend_provider<registry_provider>);

VFOLDER_END_NAMESPACE
