"""A small fake Kubernetes API server for the end-to-end test of sluice-gateway in cluster
mode: list (with resourceVersion), watch (chunked newline-delimited JSON events), discovery of
the Gateway API versions, and server-side-apply PATCHes (objects and /status) and DELETE. It records
every request. The controller reaches it through a kubeconfig like any API server."""

import json
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import yaml

PLURALS = {"GatewayClass": "gatewayclasses", "Gateway": "gateways", "TCPRoute": "tcproutes",
           "UDPRoute": "udproutes", "HTTPRoute": "httproutes",
           "ReferenceGrant": "referencegrants", "Service": "services",
           "EndpointSlice": "endpointslices", "Secret": "secrets", "Namespace": "namespaces"}
DISCOVERY = {"v1": ["gatewayclasses", "gateways", "httproutes", "referencegrants"],
             "v1alpha2": ["tcproutes", "udproutes"]}


class FakeApi:
    def __init__(self):
        self.lock = threading.Lock()
        self.rv = 0
        self.objects = {}    # (apiVersion, plural) -> {(ns, name): object}
        self.watchers = {}   # (apiVersion, plural) -> [queue]
        self.requests = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def send_json(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                api.handle(self, "GET")

            def do_PATCH(self):
                api.handle(self, "PATCH")

            def do_DELETE(self):
                api.handle(self, "DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        with self.lock:
            for qs in self.watchers.values():
                for q in qs:
                    q.put(None)
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self):
        return yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "fake", "user": {}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}]})

    # -- objects ---------------------------------------------------------------------------

    def put(self, obj):
        with self.lock:
            self.rv += 1
            col = (obj["apiVersion"], PLURALS[obj["kind"]])
            meta = obj.setdefault("metadata", {})
            if obj["kind"] in ("GatewayClass", "Namespace"):
                meta.pop("namespace", None)
            elif "namespace" not in meta:
                meta["namespace"] = "default"
            meta["resourceVersion"] = str(self.rv)
            meta.setdefault("generation", 1)
            meta.setdefault("uid", f"uid-{meta.get('namespace', '')}-{meta['name']}")
            key = (meta.get("namespace", ""), meta["name"])
            existed = key in self.objects.setdefault(col, {})
            self.objects[col][key] = obj
            self._send(col, {"type": "MODIFIED" if existed else "ADDED", "object": obj})

    def delete(self, api_version, kind, namespace, name):
        with self.lock:
            self.rv += 1
            col = (api_version, PLURALS[kind])
            obj = self.objects.get(col, {}).pop((namespace, name), None)
            if obj is not None:
                obj["metadata"]["resourceVersion"] = str(self.rv)
                self._send(col, {"type": "DELETED", "object": obj})

    def get(self, api_version, kind, namespace, name):
        with self.lock:
            return json.loads(json.dumps(
                self.objects.get((api_version, PLURALS[kind]), {}).get((namespace, name))))

    def _send(self, col, event):
        for q in self.watchers.get(col, []):
            q.put(json.loads(json.dumps(event)))

    # -- HTTP ------------------------------------------------------------------------------

    def handle(self, h, method):
        url = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body = yaml.safe_load(raw) if raw else None
        with self.lock:
            self.requests.append({"method": method, "path": url.path, "query": url.query,
                                  "content_type": h.headers.get("Content-Type", ""), "body": body})
        parts = url.path.strip("/").split("/")
        if method == "GET" and len(parts) == 3 and parts[:2] == ["apis", "gateway.networking.k8s.io"]:
            if parts[2] not in DISCOVERY:
                return h.send_json(404, {"kind": "Status", "code": 404})
            return h.send_json(200, {
                "kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"gateway.networking.k8s.io/{parts[2]}",
                "resources": [{"name": r, "singularName": "", "namespaced": r != "gatewayclasses",
                               "kind": "", "verbs": ["get", "list", "watch", "patch"]}
                              for r in DISCOVERY[parts[2]]]})
        if parts[0] == "api":
            api_version, rest = parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            return h.send_json(404, {"kind": "Status", "code": 404})
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if method == "GET" and len(rest) == 1:
            col = (api_version, rest[0])
            if "watch=true" in url.query.split("&") or "watch=1" in url.query.split("&"):
                return self.watch(h, col)
            with self.lock:
                items = list(self.objects.get(col, {}).values())
                return h.send_json(200, {"apiVersion": "v1", "kind": "List",
                                         "metadata": {"resourceVersion": str(self.rv)},
                                         "items": items})
        if method == "PATCH" and len(rest) in (2, 3):
            if h.headers.get("Content-Type") != "application/apply-patch+yaml":
                return h.send_json(415, {"kind": "Status", "code": 415})
            plural, name = rest[0], rest[1]
            kind = next(k for k, p in PLURALS.items() if p == plural)
            current = self.get(api_version, kind, namespace, name)
            if len(rest) == 3:
                if current is None:
                    return h.send_json(404, {"kind": "Status", "code": 404})
                current["status"] = body.get("status")
                obj = current
            else:
                obj = current or {"apiVersion": api_version, "kind": kind,
                                  "metadata": {"name": name, "namespace": namespace}}
                for k, v in body.items():
                    if k != "metadata":
                        obj[k] = v
                obj["metadata"].setdefault("labels", {}).update(
                    body.get("metadata", {}).get("labels", {}))
            self.put(obj)
            return h.send_json(200, obj)
        if method == "DELETE" and len(rest) == 2:
            kind = next(k for k, p in PLURALS.items() if p == rest[0])
            obj = self.get(api_version, kind, namespace, rest[1])
            if obj is None:
                return h.send_json(404, {"kind": "Status", "code": 404})
            self.delete(api_version, kind, namespace, rest[1])
            return h.send_json(200, obj)
        return h.send_json(404, {"kind": "Status", "code": 404})

    def watch(self, h, col):
        q = queue.Queue()
        with self.lock:
            self.watchers.setdefault(col, []).append(q)
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        try:
            while True:
                try:
                    event = q.get(timeout=1)
                except queue.Empty:
                    continue
                if event is None:
                    break
                data = (json.dumps(event) + "\n").encode()
                h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                h.wfile.flush()
            h.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with self.lock:
                if q in self.watchers.get(col, []):
                    self.watchers[col].remove(q)
