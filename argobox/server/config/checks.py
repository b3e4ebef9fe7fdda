"""What a configuration that matches the schema can still get wrong, found at load: operator names, a notification
channel without its backend, grants, tokens or Home Assistant users shared between identities, and unusable audit
keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from argobox.policy.decide import check_grant
from argobox.server.audit import KeyFileError, load_verify_key
from argobox.server.config.errors import Problem, text_problem

if TYPE_CHECKING:  # model.py imports this module to run the checks
    from argobox.server.config.model import AuditConfig, Config


def consistency_problems(config: Config) -> list[Problem]:
    """What a valid schema can still get wrong: operator names, a notification channel without its backend,
    grants, and tokens shared between identities."""
    problems: list[Problem] = []
    names = [op.name for op in config.operators]
    for i, name in enumerate(names):
        where = ("operators", i, "name")
        if names[:i].count(name) == 1:
            problems.append((where, f"operators: {name!r} is listed twice"))
        if name in ("policy", "argobox"):
            problems.append((where, f"operators: {name!r} is reserved for ArgoBox itself"))
        if name in config.agents:
            problems.append(
                (where, f"operators: {name!r} is also an agent; an agent identity can never be an operator")
            )
    if config.notifications.homeassistant is not None and config.homeassistant is None:
        problems.append(
            (
                ("notifications", "homeassistant"),
                "notifications.homeassistant: needs a [homeassistant] section to send through",
            )
        )
    for agent in config.agents:
        problems += [text_problem(problem) for problem in check_grant(config.grant(agent))]
    problems += shared_token_problems(config)
    problems += shared_ha_user_problems(config)
    return problems


def audit_key_problems(audit: AuditConfig) -> list[Problem]:
    """Load the configured audit keys once, so that a bad key is a configuration error naming its key."""
    problems: list[Problem] = []
    signer = verifier = None
    try:
        signer = audit.signer()
    except KeyFileError as exc:
        problems.append(
            (
                ("audit", "signing_key_file"),
                f"audit.signing_key_file: {exc}; expected an Ed25519 private key in PEM (PKCS#8, "
                "unencrypted), e.g. from `argobox audit keygen`",
            )
        )
    if audit.verify_key_file is not None:
        try:
            verifier = load_verify_key(audit.verify_key_file)
        except KeyFileError as exc:
            problems.append(
                (("audit", "verify_key_file"), f"audit.verify_key_file: {exc}; expected an Ed25519 public key in PEM")
            )
    if signer is not None and verifier is not None and signer.key_id != verifier.key_id:
        problems.append(
            (
                ("audit", "verify_key_file"),
                "audit.verify_key_file: is not the public key of audit.signing_key_file "
                f"(key ids {verifier.key_id} and {signer.key_id})",
            )
        )
    return problems


def shared_token_problems(config: Config) -> list[Problem]:
    """A token identifies exactly one identity: no two agents may share a token hash, and no operator may have an
    agent's (an agent's token can never open the operator server). The one check of both, at load."""
    owners: dict[str, list[str]] = {}
    for name, agent in config.agents.items():
        if agent.token_sha256 is not None:
            owners.setdefault(agent.token_sha256, []).append(name)
    problems: list[Problem] = [
        (
            ("agents", names[1], "token_sha256"),
            f"{', '.join(f'agents.{n}' for n in names)}: the same token_sha256; every agent needs its own token",
        )
        for names in owners.values()
        if len(names) > 1
    ]
    problems += [
        (
            ("operators", i, "token_sha256"),
            f"operators: {op.name!r} has the same token_sha256 as agents.{owners[op.token_sha256][0]}; an agent's "
            "token can never open the operator server",
        )
        for i, op in enumerate(config.operators)
        if op.token_sha256 is not None and op.token_sha256 in owners
    ]
    return problems


def shared_ha_user_problems(config: Config) -> list[Problem]:
    """A Home Assistant user's phone decides for one operator only: no two operators may share an `ha_user_id`."""
    first: dict[str, str] = {}
    problems: list[Problem] = []
    for i, op in enumerate(config.operators):
        if op.ha_user_id is None:
            continue
        owner = first.setdefault(op.ha_user_id, op.name)
        if owner != op.name:
            problems.append(
                (
                    ("operators", i, "ha_user_id"),
                    f"operators: ha_user_id {op.ha_user_id!r} is given to two operators ({owner!r} and {op.name!r}); "
                    "a phone decides for one operator only",
                )
            )
    return problems
