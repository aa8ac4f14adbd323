#!/usr/bin/env python3
"""Checks security properties of template.yaml that a linter cannot know are wanted.

Usage: check_template.py template.yaml   (scripts/test runs it after cfn-lint)

Each check is a promise README makes: the writer role never assumes a role of our own
account; CloudWatch alarms can publish to the failure topic (not encrypted with the
AWS-managed SNS key, whose policy cannot grant CloudWatch); the loader's dump bucket is
TLS-only and aborts incomplete uploads; the loader is scoped to its bucket, prefix and owner;
the functions that read a lake read only under its prefix; every Retry of the state machine can match what its Task raises.
"""
import sys

from cfnlint.decode import decode

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg, file=sys.stderr)


template, matches = decode(sys.argv[1])
if template is None:
    sys.exit(f"cannot read {sys.argv[1]}: {matches}")
resources = template["Resources"]

# The writer role: an explicit Deny on every role of our own account.
writer = resources["DestinationWriterRole"]["Properties"]
statements = [s for p in writer["Policies"] for s in p["PolicyDocument"]["Statement"]]
denies = [s for s in statements if s["Effect"] == "Deny" and s["Action"] == "sts:AssumeRole"]
check(
    any("${AWS::AccountId}:role/*" in str(s["Resource"]) for s in denies),
    "DestinationWriterRole must deny sts:AssumeRole on arn:...:iam::${AWS::AccountId}:role/*",
)
default = template["Parameters"]["CustomerRoleArns"]["Default"]
check(default != "arn:aws:iam::*:role/*", f"CustomerRoleArns defaults to every role: {default}")

# The failure topic: a key CloudWatch may use.
topic = resources["FailureTopic"]["Properties"]
key_ref = topic.get("KmsMasterKeyId")
check(key_ref != "alias/aws/sns", "FailureTopic uses the AWS-managed SNS key: CloudWatch alarms cannot publish")
if isinstance(key_ref, dict) and "Ref" in key_ref:
    key = resources[key_ref["Ref"]]["Properties"]["KeyPolicy"]["Statement"]
    granted = [
        s for s in key
        if s.get("Principal", {}).get("Service") == "cloudwatch.amazonaws.com" and s["Effect"] == "Allow"
    ]
    actions = {a for s in granted for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    check({"kms:Decrypt", "kms:GenerateDataKey*"} <= actions, f"the topic key must let CloudWatch use it: {actions}")

# The loader's bucket: TLS only, incomplete uploads aborted.
bucket = resources["DumpBucket"]["Properties"]
rules = bucket.get("LifecycleConfiguration", {}).get("Rules", [])
check(any("AbortIncompleteMultipartUpload" in r for r in rules), "DumpBucket must abort incomplete uploads")
policies = [r for r in resources.values() if r["Type"] == "AWS::S3::BucketPolicy"]
dump_policy = [p for p in policies if p["Properties"]["Bucket"] == {"Ref": "DumpBucket"}]
check(
    any(
        s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for p in dump_policy
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ),
    "DumpBucket must have a TLS-only bucket policy",
)

# The loader: scoped to its bucket, prefix and owner.
env = resources["LoadFunction"]["Properties"]["Environment"]["Variables"]
for name in ["BYOB_LOAD_BUCKET", "BYOB_LOAD_PREFIX", "BYOB_LOAD_BUCKET_OWNER", "BYOB_LOAD_TLS"]:
    check(name in env, f"LoadFunction must set {name}")
check(template["Parameters"].get("LoaderTls", {}).get("Default") == "require", "the loader must default to verified TLS")

# The dump function reads our record of finished runs (incremental ranges), nothing else of it.
dump_state = {
    s.get("Sid"): s
    for p in resources["DumpFunctionRole"]["Properties"]["Policies"]
    for s in p["PolicyDocument"]["Statement"]
    if "Sid" in s
}
check(
    "runs/*" in str(dump_state.get("ReadFinishedRuns", {}).get("Resource")),
    "DumpFunctionRole must read runs/* of the state bucket (incremental ranges)",
)
check(
    dump_state.get("ListFinishedRuns", {}).get("Condition", {}).get("StringLike", {}).get("s3:prefix") == "runs/*",
    "DumpFunctionRole may list the state bucket under runs/ only",
)

# The lake: listed and read under SourcePrefix only, never the whole bucket by default.
for role in ["DumpFunctionRole", "ExportFunctionRole"]:
    lake = [
        s["Fn::If"][1]
        for p in resources[role]["Properties"]["Policies"]
        for s in p["PolicyDocument"]["Statement"]
        if "Fn::If" in s and s["Fn::If"][0] == "HasSourceBucket"
    ]
    by_sid = {s["Sid"]: s for s in lake}
    check(set(by_sid) == {"ListLake", "ReadLake"}, f"{role}: lake statements {sorted(by_sid)}")
    if set(by_sid) == {"ListLake", "ReadLake"}:
        check(by_sid["ListLake"]["Action"] == "s3:ListBucket", f"{role}: ListLake lists only")
        check(
            "SourcePrefix" in str(by_sid["ListLake"].get("Condition", {}).get("StringLike", {}).get("s3:prefix")),
            f"{role}: ListLake must be limited by s3:prefix to SourcePrefix",
        )
        check(by_sid["ReadLake"]["Action"] == "s3:GetObject", f"{role}: ReadLake reads only")
        check("${SourcePrefix}" in str(by_sid["ReadLake"]["Resource"]), f"{role}: ReadLake must be under SourcePrefix")

# The state machine: every Retry can match what its Task raises. States.Timeout needs the Task's
# own TimeoutSeconds; a Lambda that runs into its timeout raises Sandbox.Timedout.
definition = resources["DumpStateMachine"]["Properties"]["Definition"]


def walk(states, kind):
    """Every state of `kind` in `states` and in the Maps' processors below them."""
    for name, state in states.items():
        if state.get("Type") == kind:
            yield name, state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from walk(processor["States"], kind)


found = dict(walk(definition["States"], "Task"))
check("ExportTask" in found, f"no ExportTask in the state machine: {sorted(found)}")
for name, task in found.items():
    errors = {e for r in task.get("Retry", []) for e in r["ErrorEquals"]}
    check(
        "States.Timeout" not in errors or "TimeoutSeconds" in task or "TimeoutSecondsPath" in task,
        f"{name} retries States.Timeout but has no TimeoutSeconds: it can never match",
    )
export_errors = {e for r in found.get("ExportTask", {}).get("Retry", []) for e in r["ErrorEquals"]}
check("Sandbox.Timedout" in export_errors, "ExportTask must say what a timed-out export does (Sandbox.Timedout)")

# The definition as CloudFormation hands it to Step Functions: SAM serializes it to JSON and
# DefinitionSubstitutions replaces each ${Name} as text (here with the parameters' defaults and
# a placeholder ARN). Every MaxConcurrency must then be an integer, and no ${...} may be left.
import json
import re

params = template["Parameters"]
substitutions = resources["DumpStateMachine"]["Properties"]["DefinitionSubstitutions"]
values = {}
for name, value in substitutions.items():
    if isinstance(value, dict) and "Ref" in value and value["Ref"] in params:
        values[name] = str(params[value["Ref"]].get("Default", ""))
    else:
        values[name] = f"arn:aws:lambda:eu-west-1:111122223333:function:{name}"
text = re.sub(r"\$\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), json.dumps(definition))
left = sorted(set(re.findall(r"[$][{]\w+[}]", text)))
check(not left, f"unsubstituted placeholders: {left}")
substituted = json.loads(text)


for name, state in walk(substituted["States"], "Map"):
    if "MaxConcurrency" in state:
        check(isinstance(state["MaxConcurrency"], int), f"{name}: MaxConcurrency is {state['MaxConcurrency']!r}, not an integer")
    check("MaxConcurrency" in state or "MaxConcurrencyPath" in state, f"{name}: no concurrency limit")
plan = substituted["States"]["Plan"]["ResultSelector"]
for field in ["destination_concurrency.$", "export_concurrency.$"]:
    check(
        re.fullmatch(r"States\.MathAdd\(\d+, 0\)", plan.get(field, "")) is not None,
        f"Plan must turn {field} into a number: {plan.get(field)!r}",
    )

# Scale: nothing that grows with destinations or tasks may pass through one execution. Every
# Map is DISTRIBUTED (each item a child execution with its own 25,000-event history), reads its
# items from S3 (ItemReader, not an array in the state, which is capped at 256 KB) and writes its
# children's outputs to S3 (ResultWriter). Each execution's worst-case history is then a constant,
# counted here per state: a Task 5 events plus 2 per retry, a Map 6, anything else 2, plus the
# execution's own start and end.
def task_events(state):
    retries = sum(r.get("MaxAttempts", 3) for r in state.get("Retry", []))
    return 5 + 2 * retries


def execution_events(states, name, out):
    total = 2
    for state_name, state in states.items():
        kind = state.get("Type")
        if kind == "Task":
            total += task_events(state)
        elif kind == "Map":
            total += 6
            processor = state.get("ItemProcessor") or state.get("Iterator") or {}
            mode = processor.get("ProcessorConfig", {}).get("Mode", "INLINE")
            check(mode == "DISTRIBUTED", f"{state_name}: an INLINE Map runs every item inside one execution's history")
            check("ItemReader" in state, f"{state_name}: items must come from S3 (ItemReader), not the state")
            check("ResultWriter" in state, f"{state_name}: the children's outputs must go to S3 (ResultWriter)")
            execution_events(processor.get("States", {}), f"{name} > {state_name}", out)
        else:
            total += 2
    out[name] = total


# Lambda concurrency: the defaults keep every export of every destination inside the export
# function's reserved concurrency.
defaults = {
    k: int(params.get(k, {}).get("Default", 0))
    for k in ["DestinationConcurrency", "ExportConcurrency", "ExportFunctionConcurrency"]
}
check(
    defaults["DestinationConcurrency"] * defaults["ExportConcurrency"] <= defaults["ExportFunctionConcurrency"],
    f"default concurrency exceeds the export function's reserved concurrency: {defaults}",
)
export_function = resources["ExportFunction"]["Properties"]
check(
    export_function.get("ReservedConcurrentExecutions") == {"Ref": "ExportFunctionConcurrency"},
    "ExportFunction must reserve ExportFunctionConcurrency",
)

# What an operator sees: an alarm per failure kind the functions report (byob::metrics).
kinds = {
    r["Properties"]["Dimensions"][0]["Value"]
    for r in resources.values()
    if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("MetricName") == "DestinationFailures"
}
check(kinds >= {"NonRetryable", "Retryable", "Sandbox.Timedout", "NoOutcome"}, f"alarms per failure kind: {sorted(kinds)}")
check(any(r["Type"] == "AWS::CloudWatch::Dashboard" for r in resources.values()), "the template ships a dashboard")

histories = {}
execution_events(substituted["States"], "execution", histories)
for name, events in histories.items():
    check(events < 1000, f"{name}: up to {events} history events (limit 25,000; keep a wide margin)")
print("history events per execution (worst case):", ", ".join(f"{k}: {v}" for k, v in histories.items()))

if failures:
    sys.exit(f"{len(failures)} template check(s) failed")
print("template: writer role, failure topic key, dump bucket, loader scope, lake scope, retries and concurrency checked")
