# Serves the bare workers-rs Worker (this crate) in workerd, for the bench
# runner (bench/runner/src/worker.rs), which copies the build beside a copy
# of this file and puts its own port in place of 8787:
#
#   scripts/build-worker bench/worker-bare   # -> bench/worker-bare/build/
#   "$WORKERD" serve bench/worker-bare/workerd.capnp
#   curl 127.0.0.1:8787/api/health
#
# The same compatibility date as the reference Worker's workerd.capnp. No
# `enable_request_signal`: a bare Worker does not watch for a client that
# leaves; the reference Worker does (its cost is counted as provision's).
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [(name = "main", worker = .bare)],
  sockets = [(name = "http", address = "127.0.0.1:8787", http = (), service = "main")],
);

const bare :Workerd.Worker = (
  modules = [
    (name = "index.js", esModule = embed "build/index.js"),
    (name = "index_bg.wasm", wasm = embed "build/index_bg.wasm"),
  ],
  compatibilityDate = "2025-09-01",
);
