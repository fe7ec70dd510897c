"""``waypost rules``: policy rules (admin), and trying them on a sample request or the audit log.

Conditions and whole rules are given as JSON or YAML (``--when '{type: header, header: x-team,
operator: exact, value: red}'``, or ``--file rule.yaml``); the actions have options of their own.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
import yaml

from waypost.cli.client import UrlOption, fail, fetch, ref, send
from waypost.cli.output import JsonOption, fields, key, print_answer, print_json, print_rows, when

app = typer.Typer(
    help="Manage policy rules (admin): reroute, block, allow or rewrite requests; try them first.",
    no_args_is_help=True,
)

RuleArg = typer.Argument(..., help="The rule's name or id.")
FileOption = typer.Option(
    None, "--file", "-f", help="The rule as a JSON or YAML file ('-': standard input); options override it."
)
DescriptionOption = typer.Option(None, "--description", "-d", help="What the rule is for.")
WeightOption = typer.Option(None, "--weight", help="Rules are evaluated highest weight first.")
ModeOption = typer.Option(
    None, "--mode", help="enforce, shadow (evaluated and recorded, never applied) or off."
)
WhenOption = typer.Option(
    None,
    "--when",
    help="A condition as JSON or YAML, e.g. '{type: parameter, parameter: model, operator: exact, "
    "value: gpt-4o}'; repeat for several (all must hold, or one with --any).",
)
AnyOption = typer.Option(
    False, "--any", help="The --when conditions are alternatives (or), not all required."
)
BlockOption = typer.Option(
    None, "--block", help="Action: refuse with this message ({{ quota.cost.value }}...)."
)
StatusOption = typer.Option(None, "--status", help="With --block: the status (default 403; 429 on a quota).")
RerouteOption = typer.Option(None, "--reroute", help="Action: send the request to this model instead.")
AllowOption = typer.Option(
    False, "--allow", help="Action: let the request through, evaluate no further rule."
)
RewriteOption = typer.Option(None, "--rewrite", help="Action: replace this regular expression in messages...")
ReplacementOption = typer.Option(None, "--replacement", help="... with this text (\\1, \\g<name>).")


def _parse(text: str, what: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        fail(f"{what}: not JSON or YAML: {exc}", 2)


def _read_file(path: str, what: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"{what}: cannot read {path}: {exc.strerror}", 2)
    return _parse(text, what)


def _conditions(when: list[str] | None, any_of: bool) -> Any:
    if not when:
        return None
    parsed = [_parse(text, "--when") for text in when]
    return {"or": parsed} if any_of else parsed


def _action(
    block: str | None,
    status: int | None,
    reroute: str | None,
    allow: bool,
    rewrite: str | None,
    replacement: str | None,
) -> dict[str, Any] | None:
    chosen = [
        name
        for name, given in (("block", block), ("reroute", reroute), ("allow", allow), ("rewrite", rewrite))
        if given
    ]
    if len(chosen) > 1:
        fail(f"give one action, not {' and '.join('--' + c for c in chosen)}", 2)
    if status is not None and block is None:
        fail("--status goes with --block", 2)
    if replacement is not None and rewrite is None:
        fail("--replacement goes with --rewrite", 2)
    if block is not None:
        return {"type": "block", "message": block} | ({"status": status} if status is not None else {})
    if reroute is not None:
        return {"type": "reroute", "model": reroute}
    if allow:
        return {"type": "allow"}
    if rewrite is not None:
        return {"type": "rewrite", "pattern": rewrite, "replacement": replacement or ""}
    return None


def _summary(rule: dict[str, Any]) -> str:
    action = rule.get("action") or {}
    kind = action.get("type")
    if kind == "reroute":
        return f"reroute to {action.get('model')}"
    if kind == "block":
        return f"block ({action.get('status') or 'default status'})"
    if kind == "rewrite":
        return f"rewrite /{action.get('pattern')}/"
    return str(kind)


def _count(node: Any) -> int:
    if isinstance(node, dict) and ("and" in node or "or" in node):
        return sum(_count(c) for c in node.get("and") or node.get("or") or [])
    return 1


@app.command("list")
def list_rules(url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """List rules in the order they are evaluated (highest weight first)."""
    print_rows(
        fetch(url, "/admin/rules"),
        as_json,
        [
            ("name", key("name")),
            ("weight", key("weight")),
            ("mode", key("mode")),
            ("conditions", lambda r: str(_count(r.get("conditions")))),
            ("action", _summary),
            ("source", key("source")),
            ("problem", key("error", "")),
        ],
        empty="No rules.",
    )


@app.command("show")
def show_rule(rule: str = RuleArg, url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """Show a rule: its conditions and its action."""
    answer = fetch(url, f"/admin/rules/{ref(rule)}")
    if as_json:
        print_json(answer)
        return
    rows = [
        ("id", str(answer.get("id") if answer.get("id") is not None else "- (config file)")),
        ("name", str(answer.get("name"))),
        ("weight", str(answer.get("weight"))),
        ("mode", str(answer.get("mode"))),
        ("action", _summary(answer)),
        ("description", answer.get("description") or "-"),
        ("updated", when(answer.get("updated_at"), "-")),
    ]
    if answer.get("error"):
        rows.append(("problem", str(answer["error"])))
    fields(rows)
    typer.echo(
        yaml.safe_dump(
            {"conditions": answer.get("conditions"), "action": answer.get("action")}, sort_keys=False
        ).rstrip()
    )


@app.command("create")
def create_rule(
    name: str = typer.Argument(..., help="A unique name (letters, digits, _ . : @ + -)."),
    file: str | None = FileOption,
    description: str | None = DescriptionOption,
    weight: int | None = WeightOption,
    mode: str | None = ModeOption,
    when_: list[str] | None = WhenOption,
    any_of: bool = AnyOption,
    block: str | None = BlockOption,
    status: int | None = StatusOption,
    reroute: str | None = RerouteOption,
    allow: bool = AllowOption,
    rewrite: str | None = RewriteOption,
    replacement: str | None = ReplacementOption,
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a rule, e.g. ``waypost rules create no-big-prompts --when '{type: function, function:
    count_tokens, operator: gt, value: 50000}' --block 'Prompts over 50k tokens are refused.'``."""
    body: dict[str, Any] = _read_file(file, "--file") if file else {}
    if not isinstance(body, dict):
        fail("--file: a rule is a mapping (name, conditions, action...)", 2)
    body["name"] = name
    body |= _options(description, weight, mode, when_, any_of)
    action = _action(block, status, reroute, allow, rewrite, replacement)
    if action is not None:
        body["action"] = action
    if "action" not in body:
        fail("give an action: --block, --reroute, --allow or --rewrite (or one in --file)", 2)
    answer = send(url, "POST", "/admin/rules", body)
    print_answer(
        answer,
        as_json,
        f"Created rule {name} (id {answer.get('id')}): {_summary(answer)}, {answer.get('mode')}.",
    )


def _options(
    description: str | None, weight: int | None, mode: str | None, when_: list[str] | None, any_of: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if description is not None:
        out["description"] = description
    if weight is not None:
        out["weight"] = weight
    if mode is not None:
        out["mode"] = mode
    conditions = _conditions(when_, any_of)
    if conditions is not None:
        out["conditions"] = conditions
    return out


@app.command("update")
def update_rule(
    rule: str = RuleArg,
    name: str | None = typer.Option(None, "--name", help="A new name."),
    file: str | None = FileOption,
    description: str | None = DescriptionOption,
    weight: int | None = WeightOption,
    mode: str | None = ModeOption,
    enabled: bool | None = typer.Option(
        None, "--enable/--disable", help="Turn the rule on (enforce) or off."
    ),
    when_: list[str] | None = typer.Option(None, "--when", help="Replace the conditions (as with create)."),
    any_of: bool = AnyOption,
    block: str | None = BlockOption,
    status: int | None = StatusOption,
    reroute: str | None = RerouteOption,
    allow: bool = AllowOption,
    rewrite: str | None = RewriteOption,
    replacement: str | None = ReplacementOption,
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Change a rule; what is not given stays as it is."""
    body: dict[str, Any] = _read_file(file, "--file") if file else {}
    if not isinstance(body, dict):
        fail("--file: a rule is a mapping (name, conditions, action...)", 2)
    body |= _options(description, weight, mode, when_, any_of)
    if name is not None:
        body["name"] = name
    if enabled is not None:
        body["enabled"] = enabled
    action = _action(block, status, reroute, allow, rewrite, replacement)
    if action is not None:
        body["action"] = action
    if not body:
        fail("nothing to change: give at least one option (see --help)", 2)
    answer = send(url, "PATCH", f"/admin/rules/{ref(rule)}", body)
    print_answer(
        answer, as_json, f"Updated rule {answer.get('name')}: {_summary(answer)}, {answer.get('mode')}."
    )


@app.command("delete")
def delete_rule(rule: str = RuleArg, url: str = UrlOption) -> None:
    """Delete a rule."""
    send(url, "DELETE", f"/admin/rules/{ref(rule)}")
    typer.echo(f"Deleted rule {rule}.")


@app.command("test")
def test_rules(
    rule_file: str | None = typer.Option(
        None, "--rule", help="A draft rule (JSON/YAML file), tried with the active ones."
    ),
    rules_file: str | None = typer.Option(
        None, "--rules", help="A draft rule set (a JSON/YAML list), instead of the active ones."
    ),
    request: str | None = typer.Option(
        None, "--request", help="A sample chat request body (JSON/YAML file; '-': stdin)."
    ),
    message: str | None = typer.Option(
        None, "--message", "-m", help="A sample request with this user message..."
    ),
    model: str | None = typer.Option(None, "--model", help="... for this model (default: the gateway's)."),
    system: str | None = typer.Option(None, "--system", help="... and this system prompt."),
    fmt: str = typer.Option("openai", "--format", help="The sample's format: openai or anthropic."),
    header: list[str] | None = typer.Option(
        None, "--header", "-H", help="A sample header, 'Name: value'; repeatable."
    ),
    user: str | None = typer.Option(
        None, "--user", help="Evaluate as this user (e-mail or id); default: you."
    ),
    since: str | None = typer.Option(
        None, "--since", help="Replay over the audit log from this time (ISO 8601)..."
    ),
    until: str | None = typer.Option(None, "--until", help="... until this one (default: now)."),
    limit: int = typer.Option(1000, "--limit", min=1, max=10_000, help="Replay at most this many requests."),
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Try rules on a sample request (each condition's result and the outcome) and/or replay
    them over the audit log (which decisions would change). Nothing is sent upstream."""
    body: dict[str, Any] = {"format": fmt}
    if rule_file:
        body["rule"] = _read_file(rule_file, "--rule")
    if rules_file:
        body["rules"] = _read_file(rules_file, "--rules")
    if request:
        body["request"] = _read_file(request, "--request")
    elif message is not None or model is not None or system is not None:
        body["request"] = _sample(fmt, message or "", model, system)
    if header:
        body["headers"] = dict(_header(h) for h in header)
    if user is not None:
        body["user"] = user
    if since is not None:
        body["replay"] = {"since": since, "limit": limit} | ({"until": until} if until else {})
    if "request" not in body and "replay" not in body:
        fail("give a sample (--request, or --message/--model) or a replay range (--since), or both", 2)
    answer = send(url, "POST", "/admin/rules/test", body)
    if as_json:
        print_json(answer)
        return
    if "sample" in answer:
        _print_sample(answer["sample"])
    if "replay" in answer:
        _print_replay(answer["replay"])


def _sample(fmt: str, message: str, model: str | None, system: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": message}]}
    if model is not None:
        body["model"] = model
    if system is not None:
        if fmt == "anthropic":
            body["system"] = system
        else:
            body["messages"].insert(0, {"role": "system", "content": system})
    if fmt == "anthropic":
        body["max_tokens"] = 1024
    return body


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        fail(f"--header: {text!r} is not 'Name: value'", 2)
    return name.strip(), value.strip()


_MARK = {True: "yes", False: "no ", None: " ? "}


def _print_sample(sample: dict[str, Any]) -> None:
    for rule in sample.get("rules", []):
        head = f"{rule['name']} (weight {rule['weight']}, {rule['mode']}, {rule['source']})"
        if rule.get("evaluated") is False:
            typer.echo(f"[off] {head}")
            continue
        typer.echo(f"[{_MARK[rule.get('result')]}] {head}{'  <- applies' if rule.get('applies') else ''}")
        _print_node(rule.get("conditions") or {}, "      ")
    outcome = sample.get("outcome") or {}
    typer.echo(f"outcome: {_outcome(outcome)}")
    if sample.get("shadow_matches"):
        typer.echo(f"shadow rules that hold (recorded, not enforced): {', '.join(sample['shadow_matches'])}")


def _print_node(node: dict[str, Any], indent: str) -> None:
    mark = _MARK[node.get("result")]
    if "and" in node or "or" in node:
        kind = "and" if "and" in node else "or"
        typer.echo(f"{indent}[{mark}] {'not ' if node.get('negate') else ''}{kind}")
        for child in node[kind]:
            _print_node(child, indent + "  ")
        return
    subject = (
        node.get("parameter")
        or node.get("header")
        or node.get("function")
        or node.get("metric")
        or node.get("target", "messages")
    )
    what = f"{node.get('type')} {subject}"
    negate = "not " if node.get("negate") else ""
    line = f"{indent}[{mark}] {what} {negate}{node.get('operator')} {node.get('value')!r} (seen {node.get('seen')!r})"
    if node.get("unknown"):
        line += f": unknown, {node['unknown']}"
    typer.echo(line)


def _outcome(outcome: dict[str, Any]) -> str:
    kind = outcome.get("action")
    if kind == "none" or kind is None:
        return "no rule applies"
    head = f"rule {outcome.get('rule')}: {kind}"
    if kind == "block":
        return f"{head} {outcome.get('status')} {outcome.get('message')!r}"
    if kind == "reroute":
        allowed = "" if outcome.get("allowed") else f" (refused: {outcome.get('refused', {}).get('message')})"
        return f"{head} {outcome.get('from')} -> {outcome.get('to')}{allowed}"
    if kind == "rewrite":
        return f"{head}, {outcome.get('replacements')} replacement(s)"
    return head


def _print_replay(report: dict[str, Any]) -> None:
    typer.echo(
        f"replayed {report['requests']} request(s) from {report['since']} to {report['until']}"
        f"{' (truncated)' if report.get('truncated') else ''}: {report['changed']} would change, "
        f"{report['unchanged']} would not, {report['undetermined']} undetermined"
        f" ({report['with_body']} with a body)"
    )
    for move in report.get("transitions", []):
        typer.echo(f"  {_decision(move['from'])} -> {_decision(move['to'])}: {move['requests']}")
    for item in report.get("unevaluable", []):
        typer.echo(
            f"  cannot evaluate {item['rule']}: {item['condition']} ({item['reason']}): {item['requests']}"
        )
    for example in report.get("examples", []):
        typer.echo(
            f"  e.g. {example['request_id']} {example.get('user') or '-'} {example.get('model') or '-'}: "
            f"{_decision(example['before'])} -> {_decision(example['after'])}"
        )


def _decision(decision: dict[str, Any] | None) -> str:
    return "none" if decision is None else f"{decision['action']} by {decision['rule']}"
