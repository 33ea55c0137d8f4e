// The backend registry: families registered at start-up (the reference backend plus every
// backend compiled in, see backends/CMakeLists.txt) and backends created once per device name.
#include <algorithm>
#include <map>
#include <mutex>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "reference/reference_backend.hpp"
#include "runtime/backend.hpp"

// Each backend compiled in defines porta_backend_family_<id>() in its own folder; `name` is the
// family's name, which porta::compile() accepts.
#define PORTA_BUILTIN_BACKEND(id, name) porta::detail::BackendFamily porta_backend_family_##id();
#include "porta_builtin_backends.inc"
#undef PORTA_BUILTIN_BACKEND

namespace porta::detail {

namespace {

struct Registry {
  std::mutex mutex;
  std::vector<BackendFamily> families;
  std::map<std::string, std::shared_ptr<Backend>> backends;  // by requested and canonical name

  Registry() {
    families.push_back(reference_backend_family());
#define PORTA_BUILTIN_BACKEND(id, name) families.push_back(porta_backend_family_##id());
#include "porta_builtin_backends.inc"
#undef PORTA_BUILTIN_BACKEND
  }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& f : families) out.push_back(f.name);
    return out;
  }
};

Registry& registry() {
  static Registry instance;
  return instance;
}

}  // namespace

void register_backend_family(BackendFamily family) {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  // Drop cached backends of a replaced family so the new factory is used.
  std::erase_if(r.backends, [&](const auto& entry) {
    return entry.first == family.name || entry.first.starts_with(family.name + ":");
  });
  auto it = std::find_if(r.families.begin(), r.families.end(),
                         [&](const BackendFamily& f) { return f.name == family.name; });
  if (it != r.families.end())
    *it = std::move(family);
  else
    r.families.push_back(std::move(family));
}

std::shared_ptr<Backend> get_backend(const std::string& name) {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  if (auto it = r.backends.find(name); it != r.backends.end()) return it->second;
  const auto colon = name.find(':');
  const std::string family_name = name.substr(0, colon);
  const std::string device = colon == std::string::npos ? std::string() : name.substr(colon + 1);
  auto family = std::find_if(r.families.begin(), r.families.end(),
                             [&](const BackendFamily& f) { return f.name == family_name; });
  if (family == r.families.end())
    throw Error(ErrorCode::NotFound, fmt::format("unknown backend '{}' (backends built in: {})",
                                                 name, fmt::join(r.names(), ", ")));
  auto backend = family->create(device);
  r.backends[name] = backend;
  r.backends.emplace(backend->name(), backend);
  return backend;
}

std::vector<std::string> backend_family_names() {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  return r.names();
}

}  // namespace porta::detail

namespace porta {

std::vector<DeviceInfo> list_devices() {
  std::vector<detail::BackendFamily> families;
  {
    auto& r = detail::registry();
    std::lock_guard lock(r.mutex);
    families = r.families;
  }
  std::vector<DeviceInfo> out;
  for (const auto& f : families) {
    auto devices = f.enumerate();
    out.insert(out.end(), devices.begin(), devices.end());
  }
  return out;
}

DeviceInfo device_info(const std::string& name) { return detail::get_backend(name)->info(); }

}  // namespace porta
