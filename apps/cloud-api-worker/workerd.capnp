# Runs the Worker locally in workerd, the open-source Workers runtime:
#
#   scripts/build-worker                  # -> apps/cloud-api-worker/build/
#   eval "$(scripts/build-worker --tools)" # WORKERD=... (installs if missing)
#   DATABASE_URL=postgres://user:pass@127.0.0.1:5432/db \
#     "$WORKERD" serve --experimental apps/cloud-api-worker/workerd.capnp
#   curl 127.0.0.1:8787/api/health
#   curl '127.0.0.1:8788/scheduled?cron=0+3+*+*+*'   # fires the cron trigger
#   curl -d '[{"id":"m1","body":{"delete_tokens_older_than_days":90}}]' \
#     '127.0.0.1:8788/queue?name=cloud-api-jobs'      # delivers a queue batch
#
# Paths are relative to this file. Restart workerd after a rebuild (the
# modules are read at startup). The end-to-end test (tests/workerd.rs)
# serves its builds with this same configuration.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .cloudApi),
    (name = "trigger", worker = .trigger),
    # Outbound TCP (the database): "local" and "private" let a Worker reach
    # 127.0.0.1 and private networks, which workerd refuses by default.
    (name = "internet", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [
    (name = "http", address = "127.0.0.1:8787", http = (), service = "main"),
    (name = "events", address = "127.0.0.1:8788", http = (), service = "trigger"),
  ],
);

const cloudApi :Workerd.Worker = (
  modules = [
    # worker-build's output: the main module first, then the Wasm it imports.
    (name = "index.js", esModule = embed "build/index.js"),
    (name = "index_bg.wasm", wasm = embed "build/index_bg.wasm"),
  ],
  compatibilityDate = "2025-09-01",
  # A client that disconnects aborts `request.signal`: the Worker cancels
  # that request (as wrangler.toml asks of Cloudflare).
  compatibilityFlags = ["enable_request_signal"],
  bindings = [
    (name = "DATABASE_URL", fromEnvironment = "DATABASE_URL"),
    (name = "LOG_LEVEL", text = "warn"),
  ],
  globalOutbound = "internet",
);

# Fires the main Worker's cron trigger and delivers queue batches on
# request (workerd has no scheduler and no queue broker): see trigger.js.
# Its `scheduled()` and `queue()` on a service binding are experimental in
# workerd, hence `serve --experimental`.
const trigger :Workerd.Worker = (
  modules = [(name = "trigger.js", esModule = embed "trigger.js")],
  compatibilityDate = "2025-09-01",
  compatibilityFlags = ["service_binding_extra_handlers"],
  bindings = [(name = "MAIN", service = "main")],
);
