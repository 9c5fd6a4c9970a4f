"""The security and lifecycle section of docs/cli.md (appended by nanokube.cli.docs)."""

SECURITY = """
## Who may call what, and what a kill leaves behind

**Ports.** Every port asks who is calling, with the bearer token in `DATA_DIR/token` (the one in
`kubeconfig.yaml`):

| port | what | who may call |
|---|---|---|
| API (`--api-listen`, HTTPS) | the Kubernetes API | the token; `/version`, `/healthz`, `/livez`, `/readyz` open. Plain HTTP gets `400 Client sent an HTTP request to an HTTPS server.` |
| API port, under `/ui/` | the web UI ([ui.md](ui.md)), read-only | a session cookie from a one-time login link (`nanokube ui`, the `ready` line) or the token typed into its form; the login page and static files open |
| `DATA_DIR/api.sock` (0600) | the API for the server's own components | the token |
| kubelet port (a free one; `nanokube agent --kubelet-port`; HTTPS) | container logs for `kubectl logs` (and the streaming subresources) | the token (the API server sends it); `/healthz` open. Its certificate (`pki/kubelet-NODE.crt`, CN `system:node:NODE`) is signed by the cluster CA, which the API server checks; a `nanokube agent` that cannot read the server's `pki/ca.key` issues one from a CA of its own, and then `kubectl logs` of its pods fails with a certificate error |
| proxy status (`--proxy-status-port`, HTTP) | `/healthz`, `/livez` (open, as kube-proxy's); `/services`, `/status`, `/counters`, `/metrics` (connections per endpoint), `POST /full-sync` | the token, or the owner of `DATA_DIR/proxy.sock` (0600), which `nanokube explain` and the UI use |
| DNS metrics (9153 of each DNS listen address, HTTP) | `/metrics`: CoreDNS's `coredns_dns_*` and `coredns_cache_*` series (query counts by type and rcode, no names) | anyone, as CoreDNS's `prometheus :9153` |

**Files.** The data dir is 0700; the token, `state.db` with its `-wal`/`-shm` files (they hold Secrets) and
every private key are 0600.

**Pods and the cluster's keys.** In netns mode a pod's mount namespace covers the data dir with an empty
tmpfs (its own volumes and `/etc` files are bound back), and `securityContext` is applied as the kubelet and
runc apply it: `runAsUser`, `runAsGroup`, `supplementalGroups`, `fsGroup` (group ownership of writable
volumes), `runAsNonRoot` (refused with the kubelet's message), `readOnlyRootFilesystem`,
`allowPrivilegeEscalation: false` (no_new_privs) and `capabilities` drop/add on top of a container runtime's
default set (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SYS_PTRACE ... only when added). Loopback mode: see
[loopback-mode.md](loopback-mode.md#what-is-and-is-not-isolated-securitycontext). A container run as a non-root
user needs its program readable by that user (a Python installed under `/root` is not).

**Nothing outlives a kill.** Pods die with their node agent: the agent starts a small reaper process in a
session of its own that holds one end of a pipe; when the agent ends in any way (`kill -9` included) the pipe
closes and the reaper kills every process of every pod (children and daemonised descendants too), deletes the
pods' network namespaces and mount points, and exits. A server restarted on the same data dir waits for that
reaper (`DATA_DIR/pods/.reaper.lock`) and then starts the pods again; it does not adopt old processes.
"""
