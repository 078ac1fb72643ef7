#!/usr/bin/env python3
"""A GitHub REST API double for ferry's tests: deployments, deployment statuses, releases.

Every request is checked against GitHub's published OpenAPI description of the operations
ferry uses (`rest-api-subset.json` beside this file; README.md says where it came from): the
method and path must be an operation of the description, path and query parameters must be
declared and of the declared type, the JSON body must satisfy the operation's request schema
(required members, types, enum values, and no member the schema does not declare), and the
headers GitHub asks for must be there. Each answer is built from the documented response
shapes and checked against the description's response schema too, so a wrong double is caught
as well. Findings are recorded, never raised: tests read them from `GET /_double/log` and
assert there are none.

    python3 tests/github_api/github_api.py --port 0 [--prefix /api/v3] [--token TOKEN]
    # prints: GITHUB_API_URL=http://127.0.0.1:PORT[/api/v3]

Control endpoints (not GitHub's; outside any prefix, never validated):
    POST /_double/releases     {"owner","repo","tag_name","draft","prerelease"}  (adds the tag too)
    POST /_double/tags         {"owner","repo","tag"}
    POST /_double/deployments  {"owner","repo","ref","environment","production_environment","states":[...]}
    POST /_double/fault        {"status": 500} | {"delay": 3.0} | {} ; optional "match": "POST /repos/"
    GET  /_double/log          {"requests": [...], "violations": [...]}
    GET  /_double/state        {"deployments": [...]}

Standard library only; binds 127.0.0.1.
"""
import argparse
import datetime
import json
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DESCRIPTION = Path(__file__).with_name("rest-api-subset.json")
API_VERSION = "2022-11-28"  # the description's REST API version (its file name says it)
MAX_BODY = 1 << 20


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# A small validator for the OpenAPI 3.0 schema subset the description uses.


class Validator:
    def __init__(self, doc):
        self.doc = doc

    def resolve(self, node):
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            seen += 1
            if seen > 32:
                raise ValueError("reference loop")
            target = self.doc
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            node = target
        return node

    def check(self, schema, value, where, strict, out):
        """Appends to `out` every way `value` breaks `schema`. `strict`: members the schema
        does not declare are findings (for requests: GitHub ignores them, so a typo would
        silently do nothing)."""
        schema = self.resolve(schema)
        if value is None:
            if not schema.get("nullable") and "type" in schema:
                out.append(f"{where}: null is not allowed")
            return
        for key in ("oneOf", "anyOf"):
            if key in schema:
                matches = 0
                for alt in schema[key]:
                    sub = []
                    self.check(alt, value, where, strict, sub)
                    matches += not sub
                if (key == "oneOf" and matches != 1) or (key == "anyOf" and matches == 0):
                    out.append(f"{where}: matches {matches} of the {key} alternatives")
                return
        for alt in schema.get("allOf", []):
            self.check(alt, value, where, strict, out)
        kind = schema.get("type")
        ok = {
            None: True,
            "object": isinstance(value, dict),
            "array": isinstance(value, list),
            "string": isinstance(value, str),
            "boolean": isinstance(value, bool),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        }.get(kind, False)
        if not ok:
            out.append(f"{where}: expected {kind}, got {type(value).__name__} {json.dumps(value)[:60]}")
            return
        if "enum" in schema and value not in schema["enum"]:
            out.append(f"{where}: {json.dumps(value)} is not one of {schema['enum']}")
        if isinstance(value, str):
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                out.append(f"{where}: longer than {schema['maxLength']}")
            if "minLength" in schema and len(value) < schema["minLength"]:
                out.append(f"{where}: shorter than {schema['minLength']}")
            fmt = None if value == schema.get("default") else schema.get("format")  # "" is documented
            if fmt == "uri" and not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", value):
                out.append(f"{where}: {value!r} is not a URI")
            if fmt == "date-time" and not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", value):
                out.append(f"{where}: {value!r} is not a date-time")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "maximum" in schema and value > schema["maximum"]:
                out.append(f"{where}: above {schema['maximum']}")
            if "minimum" in schema and value < schema["minimum"]:
                out.append(f"{where}: below {schema['minimum']}")
        if isinstance(value, dict):
            props = schema.get("properties", {})
            for name in schema.get("required", []):
                if name not in value:
                    out.append(f"{where}: required member {name!r} is missing")
            extra = schema.get("additionalProperties")
            for name, member in value.items():
                if name in props:
                    self.check(props[name], member, f"{where}.{name}", strict, out)
                elif isinstance(extra, dict):
                    self.check(extra, member, f"{where}.{name}", strict, out)
                elif extra is False or (strict and extra is not True):
                    out.append(f"{where}: member {name!r} is not in the description")
        if isinstance(value, list) and "items" in schema:
            for i, item in enumerate(value):
                self.check(schema["items"], item, f"{where}[{i}]", strict, out)


class Api:
    """The description's operations, matched by method and path."""

    def __init__(self, doc):
        self.doc = doc
        self.v = Validator(doc)
        self.routes = []
        for template, item in doc["paths"].items():
            pattern, names = "", []
            for part in re.split(r"(\{[^}]+\})", template):
                if part.startswith("{"):
                    name = part[1:-1]
                    names.append(name)
                    multi = any(
                        self.v.resolve(p).get("name") == name and self.v.resolve(p).get("x-multi-segment")
                        for op in item.values()
                        for p in op.get("parameters", [])
                    )
                    pattern += "(.+)" if multi else "([^/]+)"
                else:
                    pattern += re.escape(part)
            self.routes.append((re.compile("^" + pattern + "$"), template, names, item))

    def match(self, method, path):
        for regex, template, names, item in self.routes:
            m = regex.match(path)
            if m:
                params = {n: urllib.parse.unquote(g) for n, g in zip(names, m.groups())}
                return template, item.get(method.lower()), params
        return None, None, {}

    def check_request(self, op, params, query, headers, raw, out):
        declared = {}
        for p in op.get("parameters", []):
            p = self.v.resolve(p)
            declared[(p["in"], p["name"])] = p
        for (where, name), p in declared.items():
            if where == "path":
                self.check_scalar(p, params.get(name), f"path parameter {name}", out)
            if where == "query" and name in query:
                if len(query[name]) > 1:
                    out.append(f"query parameter {name} given {len(query[name])} times")
                self.check_scalar(p, query[name][0], f"query parameter {name}", out)
            if p.get("required") and where == "query" and name not in query:
                out.append(f"required query parameter {name} is missing")
        for name in query:
            if ("query", name) not in declared:
                out.append(f"query parameter {name!r} is not in the description")
        # Prose of the description: "The number of results per page (max 100)".
        if "per_page" in query and query["per_page"][0].isdigit() and int(query["per_page"][0]) > 100:
            out.append("query parameter per_page is above 100 (the description says max 100)")
        body = op.get("requestBody")
        if body is None:
            if raw:
                out.append("this operation takes no request body")
            return None
        if not raw:
            if body.get("required"):
                out.append("the request body is required")
            return None
        if not headers.get("content-type", "").startswith("application/json"):
            out.append(f"Content-Type is {headers.get('content-type')!r}, not application/json")
        try:
            value = json.loads(raw)
        except ValueError as e:
            out.append(f"the body is not JSON: {e}")
            return None
        schema = body["content"]["application/json"]["schema"]
        self.v.check(schema, value, "body", True, out)
        return value

    def check_scalar(self, p, text, what, out):
        if text is None:
            if p.get("required"):
                out.append(f"{what} is missing")
            return
        schema = self.v.resolve(p.get("schema", {}))
        kind = schema.get("type")
        if kind == "integer" and not re.fullmatch(r"-?\d+", text):
            out.append(f"{what}: {text!r} is not an integer")
        elif kind == "boolean" and text not in ("true", "false"):
            out.append(f"{what}: {text!r} is not a boolean")
        elif "enum" in schema and text not in schema["enum"]:
            out.append(f"{what}: {text!r} is not one of {schema['enum']}")

    def check_response(self, op, status, value, out):
        response = op.get("responses", {}).get(str(status))
        if response is None and status == 404:
            return  # GitHub answers 404 for any missing resource or hidden repository
        if response is None:
            out.append(f"response: status {status} is not documented for this operation")
            return
        response = self.v.resolve(response)
        content = response.get("content", {}).get("application/json")
        if content is None:
            if value is not None:
                out.append(f"response: status {status} is documented without a body")
            return
        sub = []
        self.v.check(content["schema"], value, "response", False, sub)
        out.extend(sub)


# ---------------------------------------------------------------------------------------------
# The GitHub side: repositories with tags, releases, deployments and their statuses.


class World:
    def __init__(self, base):
        self.lock = threading.RLock()
        self.base = base  # e.g. http://127.0.0.1:PORT/api/v3
        self.tags = set()  # (owner, repo, tag)
        self.releases = {}  # (owner, repo, tag) -> release dict
        self.deployments = []  # dicts, oldest first
        self.next_id = 1000
        self.log = []
        self.fault = {}

    def new_id(self):
        with self.lock:
            self.next_id += 1
            return self.next_id

    def user(self):
        login = "github-actions[bot]"
        u = f"{self.base}/users/{urllib.parse.quote(login)}"
        return {
            "login": login, "id": 41898282, "node_id": "MDM6Qm90NDE4OTgyODI=",
            "avatar_url": "https://avatars.githubusercontent.com/in/15368?v=4", "gravatar_id": "",
            "url": u, "html_url": "https://github.com/apps/github-actions",
            "followers_url": f"{u}/followers", "following_url": f"{u}/following{{/other_user}}",
            "gists_url": f"{u}/gists{{/gist_id}}", "starred_url": f"{u}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{u}/subscriptions", "organizations_url": f"{u}/orgs",
            "repos_url": f"{u}/repos", "events_url": f"{u}/events{{/privacy}}",
            "received_events_url": f"{u}/received_events", "type": "Bot", "site_admin": False,
        }

    def repo_url(self, owner, repo):
        return f"{self.base}/repos/{owner}/{repo}"

    def add_release(self, owner, repo, tag, draft, prerelease):
        with self.lock:
            rid = self.new_id()
            repo_url = self.repo_url(owner, repo)
            now = time.time()
            self.tags.add((owner, repo, tag))
            self.releases[(owner, repo, tag)] = {
                "url": f"{repo_url}/releases/{rid}",
                "html_url": f"https://github.com/{owner}/{repo}/releases/tag/{tag}",
                "assets_url": f"{repo_url}/releases/{rid}/assets",
                "upload_url": f"https://uploads.github.com/repos/{owner}/{repo}/releases/{rid}/assets{{?name,label}}",
                "tarball_url": f"{repo_url}/tarball/{tag}", "zipball_url": f"{repo_url}/zipball/{tag}",
                "id": rid, "node_id": f"RE_{rid}", "tag_name": tag, "target_commitish": "main",
                "name": tag, "body": "", "draft": bool(draft), "prerelease": bool(prerelease),
                "created_at": iso(now), "published_at": None if draft else iso(now),
                "author": self.user(), "assets": [],
            }

    def add_deployment(self, owner, repo, body):
        with self.lock:
            did = self.new_id()
            env = body.get("environment", "production")
            repo_url = self.repo_url(owner, repo)
            now = time.time()
            d = {
                "url": f"{repo_url}/deployments/{did}", "id": did, "node_id": f"DE_{did}",
                "sha": "a" * 40, "ref": body["ref"], "task": body.get("task", "deploy"),
                "payload": body.get("payload", ""), "original_environment": env, "environment": env,
                "description": body.get("description", ""), "creator": self.user(),
                "created_at": iso(now), "updated_at": iso(now),
                "statuses_url": f"{repo_url}/deployments/{did}/statuses", "repository_url": repo_url,
                "transient_environment": bool(body.get("transient_environment", False)),
                "production_environment": bool(body.get("production_environment", env == "production")),
                "performed_via_github_app": None,
                "_owner": owner, "_repo": repo, "_statuses": [],
            }
            self.deployments.append(d)
            return d

    def add_status(self, d, body):
        with self.lock:
            sid = self.new_id()
            now = time.time()
            log_url = body.get("log_url", body.get("target_url", ""))
            s = {
                "url": f"{d['url']}/statuses/{sid}", "id": sid, "node_id": f"DES_{sid}",
                "state": body["state"], "creator": self.user(),
                "description": body.get("description", ""),
                "environment": body.get("environment", d["environment"]),
                "target_url": log_url, "log_url": log_url,
                "environment_url": body.get("environment_url", ""),
                "created_at": iso(now), "updated_at": iso(now),
                "deployment_url": d["url"], "repository_url": d["repository_url"],
                "performed_via_github_app": None,
            }
            d["_statuses"].insert(0, s)  # newest first, as GitHub lists them
            # GitHub's auto_inactive: only prior non-transient, NON-PRODUCTION deployments of the
            # same environment whose latest state is success.
            if body["state"] == "success" and body.get("auto_inactive", True):
                for other in self.deployments:
                    if (other is not d and other["_owner"] == d["_owner"] and other["_repo"] == d["_repo"]
                            and other["environment"] == d["environment"] and other["id"] < d["id"]
                            and not other["transient_environment"] and not other["production_environment"]
                            and other["_statuses"] and other["_statuses"][0]["state"] == "success"):
                        self.add_status(other, {"state": "inactive", "auto_inactive": False})
            return s


def public(obj):
    if isinstance(obj, dict):
        return {k: public(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [public(v) for v in obj]
    return obj


def not_found():
    return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"}


def page(items, query):
    def number_of(name, default):
        text = query.get(name, [str(default)])[0]
        return int(text) if re.fullmatch(r"\d{1,6}", text) else default  # bad ones are findings already

    per_page = number_of("per_page", 30)
    number = number_of("page", 1)
    per_page = max(1, min(per_page, 100))
    start = (max(number, 1) - 1) * per_page
    return items[start:start + per_page]


def handle(world, template, method, params, query, body):
    """Answers an operation that passed (or failed) validation, as GitHub would."""
    owner, repo = params.get("owner"), params.get("repo")
    with world.lock:
        if template == "/repos/{owner}/{repo}/releases/tags/{tag}":
            r = world.releases.get((owner, repo, params["tag"]))
            # "Get a published release with the specified tag": drafts are not found.
            if r is None or r["draft"]:
                return not_found()
            return 200, r
        if template == "/repos/{owner}/{repo}/deployments" and method == "GET":
            items = [d for d in reversed(world.deployments) if d["_owner"] == owner and d["_repo"] == repo]
            for key in ("environment", "ref", "task", "sha"):
                if key in query:
                    items = [d for d in items if d[key] == query[key][0]]
            return 200, public(page(items, query))
        if template == "/repos/{owner}/{repo}/deployments" and method == "POST":
            if not isinstance(body, dict) or not isinstance(body.get("ref"), str):
                return 422, {"message": "Invalid request.", "documentation_url": "https://docs.github.com/rest"}
            if (owner, repo, body["ref"]) not in world.tags:
                return 422, {"message": f"No ref found for: {body['ref']}",
                             "documentation_url": "https://docs.github.com/rest/deployments/deployments#create-a-deployment",
                             "errors": [{"resource": "Deployment", "field": "ref", "code": "invalid"}]}
            return 201, public(world.add_deployment(owner, repo, body))
        deployment = None
        if "deployment_id" in params and params["deployment_id"].isdigit():
            want = int(params["deployment_id"])
            deployment = next((d for d in world.deployments if d["id"] == want
                               and d["_owner"] == owner and d["_repo"] == repo), None)
        if template.endswith("/statuses") and deployment is None:
            return not_found()
        if template.endswith("/statuses") and method == "GET":
            return 200, public(page(deployment["_statuses"], query))
        if template.endswith("/statuses") and method == "POST":
            if not isinstance(body, dict) or body.get("state") not in (
                    "error", "failure", "inactive", "in_progress", "queued", "pending", "success"):
                return 422, {"message": "Invalid request.", "documentation_url": "https://docs.github.com/rest"}
            return 201, public(world.add_status(deployment, body))
    return not_found()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "github-api-double/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def reply(self, status, value, extra_headers=()):
        data = b"" if value is None else json.dumps(value).encode()
        self.send_response(status)
        if value is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-GitHub-Api-Version-Selected", API_VERSION)
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        text = self.headers.get("Content-Length") or "0"
        length = int(text) if text.isdigit() else MAX_BODY + 1
        if length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length) if length else b""

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def dispatch(self, method):
        world, api = self.server.world, self.server.api
        url = urllib.parse.urlsplit(self.path)
        try:
            raw = self.read_body()
        except ValueError:
            self.reply(413, {"message": "body too large"})
            return
        if url.path.startswith("/_double/"):
            self.control(method, url.path, raw)
            return
        violations = []
        path = url.path
        prefix = self.server.prefix
        if prefix:
            if path.startswith(prefix + "/"):
                path = path[len(prefix):]
            else:
                violations.append(f"{path} is outside the API base path {prefix}")
        headers = {k.lower(): v for k, v in self.headers.items()}
        token = self.server.token
        auth = headers.get("authorization", "")
        if token is not None and auth not in (f"Bearer {token}", f"token {token}"):
            violations.append("Authorization is not the token (Bearer)")
        if not headers.get("user-agent"):
            violations.append("GitHub requires a User-Agent header")
        if "json" not in headers.get("accept", ""):
            violations.append(f"Accept {headers.get('accept')!r} does not ask for JSON")
        version = headers.get("x-github-api-version")
        if version is not None and version != API_VERSION:
            violations.append(f"X-GitHub-Api-Version {version!r} is not the described {API_VERSION}")
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        template, op, params = api.match(method, path)
        body = None
        if op is None:
            violations.append(f"{method} {path} is not an operation of the description")
            status, value = not_found()
        else:
            body = api.check_request(op, params, query, headers, raw, violations)
            # Prose of the description: "The maximum description length is 140 characters."
            if template.endswith("/statuses") and method == "POST" and isinstance(body, dict):
                if len(body.get("description") or "") > 140:
                    violations.append("body.description: longer than 140 characters (the description says so)")
            status, value = handle(world, template, method, params, query, body)
        fault = world.fault
        faulted = bool(fault) and fault.get("match", "") in f"{method} {url.path}"
        if faulted and fault.get("delay"):
            time.sleep(min(float(fault["delay"]), 30.0))
        if faulted and fault.get("status"):
            status, value = int(fault["status"]), {"message": "Server Error", "documentation_url": "https://docs.github.com/rest"}
        elif op is not None:
            api.check_response(op, status, value, violations)
        entry = {
            "method": method, "path": url.path, "query": query,
            "headers": {k: v for k, v in headers.items() if k != "authorization"},
            "authorization_ok": token is None or auth in (f"Bearer {token}", f"token {token}"),
            "body": body if body is not None else (raw.decode("utf-8", "replace") or None),
            "operation": (op or {}).get("operationId"), "status": status, "violations": violations,
        }
        with world.lock:
            world.log.append(entry)
        try:
            self.reply(status, value)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def control(self, method, path, raw):
        world = self.server.world
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            self.reply(400, {"message": "control body is not JSON"})
            return
        if method == "GET" and path == "/_double/log":
            with world.lock:
                log = json.loads(json.dumps(world.log))
            self.reply(200, {"requests": log, "violations": [
                f"{e['method']} {e['path']}: {v}" for e in log for v in e["violations"]]})
        elif method == "GET" and path == "/_double/state":
            with world.lock:
                self.reply(200, {"deployments": [
                    {**public(d), "statuses": public(d["_statuses"])} for d in world.deployments]})
        elif method == "POST" and path == "/_double/releases":
            world.add_release(body["owner"], body["repo"], body["tag_name"], body.get("draft", False),
                              body.get("prerelease", False))
            self.reply(201, {})
        elif method == "POST" and path == "/_double/tags":
            with world.lock:
                world.tags.add((body["owner"], body["repo"], body["tag"]))
            self.reply(201, {})
        elif method == "POST" and path == "/_double/deployments":
            with world.lock:
                world.tags.add((body["owner"], body["repo"], body["ref"]))
                d = world.add_deployment(body["owner"], body["repo"], body)
                for state in body.get("states", []):
                    world.add_status(d, {"state": state, "auto_inactive": False})
            self.reply(201, {"id": d["id"]})
        elif method == "POST" and path == "/_double/fault":
            with world.lock:
                world.fault = body
            self.reply(200, {})
        else:
            self.reply(404, {"message": f"no control endpoint {method} {path}"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--prefix", default="", help="API base path, e.g. /api/v3 as on GitHub Enterprise Server")
    ap.add_argument("--token", default=None, help="the token every API request must carry")
    args = ap.parse_args()
    prefix = args.prefix.rstrip("/")
    if prefix and not prefix.startswith("/"):
        ap.error("--prefix must start with /")
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.prefix = prefix
    server.token = args.token
    server.api = Api(json.loads(DESCRIPTION.read_text()))
    base = f"http://127.0.0.1:{server.server_address[1]}{prefix}"
    server.world = World(base)
    print(f"GITHUB_API_URL={base}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
