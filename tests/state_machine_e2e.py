#!/usr/bin/env python3
"""Runs template.yaml's own state machine, substituted as CloudFormation does, on moto's Amazon
States Language interpreter (LocalStack's, `execute_state_machine`), every Lambda task served by
the real function binaries through a Lambda Runtime API emulator, every S3 call (the plan's
ItemReader, the ResultWriter, the functions' state and config) going to the same moto server.

Usage: state_machine_e2e.py --bin-dir <target/debug> --template template.yaml --work <dir>

Cases:
  1. a clean run of two destinations writes exactly what `byob run` writes, and the execution's
     output is the run's summary;
  2. a destination whose bucket does not exist fails alone (its export is NonRetryable: invoked
     once), the others get their receipts, the execution fails DestinationsFailed and the
     summary in the state bucket names it;
  3. an export whose first invocation fails Retryable is retried and the run succeeds;
  4. a copy of the definition with one broken JSONPath fails (the harness can tell).

What is emulated, and why: Lambda itself (no container runtime here): the emulator keeps one
warm process per function (two for export, so tasks land in different containers), hands it
one invocation at a time over the Runtime API, and answers Step Functions with the function's
response or its error (`errorType` as the function reported it). Case 3's first failure is the
emulator's (it answers `Retryable` without running the binary), standing in for a transient
failure inside the function; everything else is the binaries' own behaviour.
"""
import argparse
import copy
import http.server
import itertools
import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ACCOUNT = "123456789012"
REGION = "us-east-1"
RUN = "2024-03-01T04:00"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the definition, as CloudFormation hands it to Step Functions ---------------------------

def definition(template_path, functions):
    from cfnlint.decode import decode

    template, matches = decode(template_path)
    if template is None:
        sys.exit(f"cannot read {template_path}: {matches}")
    machine = template["Resources"]["DumpStateMachine"]["Properties"]
    params = template["Parameters"]
    values = {}
    for name, value in machine["DefinitionSubstitutions"].items():
        if isinstance(value, dict) and "Ref" in value and value["Ref"] in params:
            values[name] = str(params[value["Ref"]]["Default"])
    values.update({f"{n.capitalize()}FunctionArn": arn for n, arn in functions.items()})
    values["StateBucketName"] = "byob-state"
    text = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], json.dumps(machine["Definition"]))
    return json.loads(text)


# --- the Lambda Runtime API emulator --------------------------------------------------------

class Function:
    """One function: warm processes of its binary, each polling the Runtime API."""

    def __init__(self, name, binary, env, containers=1):
        self.name = name
        self.pending = queue.Queue()
        self.waiting = {}
        self.invocations = []
        self.inject = []  # (predicate, errorType, errorMessage): answered without the binary
        self.lock = threading.Lock()
        self.port = free_port()
        handler = self.handler()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.processes = []
        for n in range(containers):
            process_env = dict(env)
            process_env.update({
                "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.port}",
                "AWS_LAMBDA_FUNCTION_NAME": name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769",
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": f"container-{n}",
            })
            log = open(Path(env["BYOB_E2E_WORK"]) / f"{name}-{n}.log", "w")
            self.processes.append(subprocess.Popen([binary], env=process_env, stdout=log, stderr=log))

    def handler(self):
        function = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if not self.path.endswith("/invocation/next"):
                    self.send_error(404)
                    return
                request_id, payload = function.pending.get()
                body = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 900_000))
                self.send_header(
                    "Lambda-Runtime-Invoked-Function-Arn",
                    f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function.name}",
                )
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                match = re.search(r"/invocation/([^/]+)/(response|error)$", self.path)
                if match:
                    request_id, kind = match.groups()
                    function.waiting[request_id].put((kind, json.loads(body or b"null")))
                elif self.path.endswith("/init/error"):
                    print(f"{function.name}: init error {body!r}", file=sys.stderr)
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler

    def invoke(self, payload):
        with self.lock:
            self.invocations.append(payload)
            for i, (predicate, error_type, message) in enumerate(self.inject):
                if predicate(payload):
                    del self.inject[i]
                    return "error", {"errorType": error_type, "errorMessage": message}
        request_id = str(uuid.uuid4())
        answer = queue.Queue()
        self.waiting[request_id] = answer
        self.pending.put((request_id, payload))
        kind, body = answer.get(timeout=900)
        del self.waiting[request_id]
        return kind, body

    def stop(self):
        for p in self.processes:
            p.kill()
            p.wait()
        self.server.shutdown()


# --- the run --------------------------------------------------------------------------------

def main():
    args = argparse.ArgumentParser()
    args.add_argument("--bin-dir", required=True)
    args.add_argument("--template", required=True)
    args.add_argument("--work", required=True)
    opts = args.parse_args()
    work = Path(opts.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    bins = Path(opts.bin_dir).resolve()

    import logging

    # moto's interpreter logs every failed state at length; the checks below say what matters.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    port = free_port()
    os.environ["MOTO_PORT"] = str(port)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    import boto3
    from moto.core.config import default_user_config
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    default_user_config["stepfunctions"]["execute_state_machine"] = True
    functions = {}

    def invoke_lambda(parameters, region, state_credentials):
        name = parameters["FunctionName"].rsplit(":", 1)[-1]
        payload = parameters.get("Payload")
        payload = json.loads(payload) if isinstance(payload, (str, bytes)) else payload
        kind, body = functions[name].invoke(payload)
        response = {"StatusCode": 200, "Payload": body, "ExecutedVersion": "$LATEST"}
        if kind == "error":
            response["FunctionError"] = "Unhandled"
        return response

    lambda_eval_utils._invoke_lambda_function = invoke_lambda
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    session = dict(region_name=REGION, endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing")
    s3 = boto3.client("s3", **session)
    sfn = boto3.client("stepfunctions", **session)

    # The platform's lake and our state bucket; the config uploaded where BYOB_CONFIG points.
    byob = str(bins / "byob")
    subprocess.run([byob, "generate", "--out", str(work / "lake"), "--scale", "0.002"], check=True, capture_output=True)
    s3.create_bucket(Bucket="byob-state")

    def config(destinations, state):
        tables = "".join(f'[[tables]]\nname = "{t}"\n' for t in ["companies", "contacts", "events", "revenue", "revenue_attribution", "paid_ads"])
        text = f'[source]\ntype = "parquet"\npath = "{work / "lake"}"\n\n{tables}\n[export]\ntarget_rows_per_slice = 700\n\n'
        for d in destinations:
            text += f'[[destinations]]\nid = "{d["id"]}"\ntenant = "{d["tenant"]}"\n'
            if "folder" in d:
                text += f'folder = "{d["folder"]}"\nprefix = "dump"\n'
            else:
                text += (f'bucket = "{d["bucket"]}"\nprefix = "dump"\n'
                         f'role_arn = "arn:aws:iam::{ACCOUNT}:role/byob-{d["id"]}"\nexternal_id = "byob-{d["id"]}-e2e"\n')
            text += "\n"
        text += f'[aws]\nregion = "{REGION}"\nendpoint_url = "{endpoint}"\nwriter_role_arn = "arn:aws:iam::{ACCOUNT}:role/byob-destination-writer"\n\n'
        text += f'[state]\npath = "{state}"\n'
        return text

    env = {
        "PATH": os.environ.get("PATH", ""),
        "BYOB_CONFIG": "s3://byob-state/config/byob.toml",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "BYOB_E2E_WORK": str(work),
        "RUST_LOG": "info",
    }
    for name, containers in [("dump", 1), ("export", 2), ("finalize", 1)]:
        functions[f"byob-{name}"] = Function(f"byob-{name}", str(bins / f"byob-{name}"), env, containers)
    arns = {n: f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:byob-{n}" for n in ["dump", "export", "finalize"]}
    asl = definition(opts.template, arns)
    role = f"arn:aws:iam::{ACCOUNT}:role/byob-state-machine"
    failures = []

    def check(cond, message):
        if not cond:
            failures.append(message)
            print("FAIL:", message, file=sys.stderr)

    def execute(definition_json, name):
        machine = sfn.create_state_machine(name=name, definition=json.dumps(definition_json), roleArn=role)["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=machine, name=f"{name}-1", input=json.dumps({"run": RUN}))["executionArn"]
        deadline = time.time() + 600
        while time.time() < deadline:
            described = sfn.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING":
                return described
            time.sleep(0.5)
        sys.exit(f"{name}: still running after 10 minutes")

    def files(root):
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    def same_dump(a, b, what):
        fa, fb = files(a), files(b)
        check(fa and sorted(fa) == sorted(fb), f"{what}: keys differ: {sorted(set(fa) ^ set(fb))[:5]}")
        for key in fa:
            if key not in fb:
                continue
            if key.endswith("receipt.json") or key.endswith("receipt.run.json"):
                x, y = json.loads(fa[key]), json.loads(fb[key])
                for r in (x, y):
                    r.pop("timestamp", None)
                check(x == y, f"{what}: {key} differs beyond its timestamp")
            else:
                check(fa[key] == fb[key], f"{what}: {key} differs")

    def exports_of(destination):
        return [p for p in functions["byob-export"].invocations if p.get("task", {}).get("destination") == destination]

    # 1. A clean run of two destinations equals `byob run`.
    def destinations(folder):
        return [{"id": t, "tenant": t, "folder": str(work / folder / t)} for t in ["acme", "globex"]]

    good = destinations("sfn")
    s3.put_object(Bucket="byob-state", Key="config/byob.toml", Body=config(good, "s3://byob-state/").encode())
    done = execute(asl, "clean")
    check(done["status"] == "SUCCEEDED", f"clean run: {done['status']} {done.get('error')} {done.get('cause')}")
    summary = json.loads(done.get("output") or "{}")
    check((summary.get("ok"), summary.get("failed")) == (2, 0), f"clean run summary: {summary}")
    local = destinations("local")
    (work / "local.toml").write_text(config(local, str(work / "local-state")))
    subprocess.run([byob, "run", "--config", str(work / "local.toml"), "--run", RUN], check=True, capture_output=True)
    for d in good:
        same_dump(work / "sfn" / d["id"], work / "local" / d["id"], f"clean run, {d['id']}")
    tasks = len(functions["byob-export"].invocations)
    print(f"clean run: {summary.get('ok')} destinations, {tasks} export invocations, summary {summary.get('summary')}")

    # 2. A destination whose bucket does not exist fails alone, NonRetryable, invoked once.
    broken = destinations("sfn2")[:1] + [{"id": "initech", "tenant": "initech", "bucket": "no-such-bucket"}]
    s3.put_object(Bucket="byob-state", Key="config/byob.toml", Body=config(broken, "s3://byob-state/").encode())
    before = len(functions["byob-export"].invocations)
    done = execute(asl, "one-fails")
    check(done["status"] == "FAILED" and done.get("error") == "DestinationsFailed", f"one-fails: {done['status']} {done.get('error')}")
    check((work / "sfn2" / "acme" / "dump" / "receipt.json").exists(), "one-fails: acme got no receipt")
    stored = json.loads(s3.get_object(Bucket="byob-state", Key="summaries/2024-03-01T04_00.json")["Body"].read())
    names = [(f["destination"], f["error"]) for f in stored["failures"]]
    check(names == [("initech", "NonRetryable")], f"one-fails summary failures: {names}")
    initech = [p for p in functions["byob-export"].invocations[before:] if p["task"]["destination"] == "initech"]
    attempted = {json.dumps(p["task"], sort_keys=True) for p in initech}
    check(len(initech) == len(attempted), f"one-fails: a NonRetryable export was retried ({len(initech)} invocations of {len(attempted)} tasks)")
    print(f"one destination fails: {stored['ok']} ok, {stored['failed']} failed ({names}); initech's exports invoked {len(initech)}x for {len(attempted)} tasks")

    # 3. A Retryable failure is retried, then the run succeeds.
    again = destinations("sfn3")
    s3.put_object(Bucket="byob-state", Key="config/byob.toml", Body=config(again, "s3://byob-state/").encode())
    target = {"table": "companies", "destination": "acme"}
    functions["byob-export"].inject.append((
        lambda p: all(p.get("task", {}).get(k) == v for k, v in target.items()),
        "Retryable", "reading table \"companies\": connection reset (injected by the emulator)",
    ))
    before = len(functions["byob-export"].invocations)
    done = execute(asl, "retried")
    check(done["status"] == "SUCCEEDED", f"retried: {done['status']} {done.get('error')} {done.get('cause')}")
    companies = [p for p in functions["byob-export"].invocations[before:] if all(p["task"].get(k) == v for k, v in target.items())]
    check(len(companies) == 2, f"retried: acme/companies invoked {len(companies)} times, expected 2")
    same_dump(work / "sfn3" / "acme", work / "local" / "acme", "retried run, acme")
    print(f"a Retryable failure: acme/companies invoked {len(companies)}x, run {done['status']}")

    # 4. One broken JSONPath in a copy of the definition: the harness sees it fail.
    broken_asl = copy.deepcopy(asl)
    finalize = broken_asl["States"]["Destinations"]["ItemProcessor"]["States"]["Finalize"]
    finalize["Parameters"]["Payload"]["destination.$"] = "$.destinaton"
    s3.put_object(Bucket="byob-state", Key="config/byob.toml", Body=config(again, "s3://byob-state/").encode())
    done = execute(broken_asl, "broken-path")
    check(done["status"] == "FAILED", f"a broken JSONPath went unnoticed: {done['status']}")
    print(f"a broken JSONPath ($.destinaton in Finalize): execution {done['status']} {done.get('error')}")

    # The metrics the functions wrote (CloudWatch Embedded Metric Format lines on stdout).
    def emf(name):
        lines = []
        for log in work.glob(f"{name}-*.log"):
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("{") and '"_aws"' in line:
                    lines.append(json.loads(line))
        return lines

    exports = [m for m in emf("byob-export") if "Rows" in m]
    check(exports and all(m["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "byob" for m in exports), "no export metrics")
    failed = [(m["destination"], m["Error"]) for m in emf("byob-finalize") if "DestinationFailures" in m]
    check(("initech", "NonRetryable") in failed, f"no DestinationFailures metric for initech: {failed}")
    check(any("DestinationsOk" in m for m in emf("byob-finalize")), "no run metrics")
    errors = [m["Verdict"] for m in emf("byob-export") if "StepErrors" in m]
    check("NonRetryable" in errors, f"no StepErrors metric: {errors}")
    print(f"metrics: {len(exports)} export lines, failures {sorted(set(failed))}, step errors {sorted(set(errors))}")

    for f in functions.values():
        f.stop()
    server.stop()
    if failures:
        for log in sorted(work.glob("byob-*.log")):
            print(f"--- {log.name} (last lines)", file=sys.stderr)
            print("\n".join(log.read_text(errors="replace").splitlines()[-15:]), file=sys.stderr)
        sys.exit(f"{len(failures)} state machine check(s) failed")
    print("state machine: template.yaml's definition executed for 4 cases")


if __name__ == "__main__":
    main()
