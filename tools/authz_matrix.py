"""Authorization matrix of the deployed app: who can approve, start, write models, decrypt, pass roles.

Read off the synthesized templates (``cdk synth`` output, or an in-process synth when no folder is
given) with :mod:`tools.iam_eval`, for every role of the templates (CDK's own unnamed roles by logical
id), so the table in the README cannot drift from the code (``tests/test_authz_matrix.py`` regenerates it
and compares)::

    python -m tools.authz_matrix                 # synthesize in-process, print the table
    python -m tools.authz_matrix --cdk-out cdk.out
    python -m tools.authz_matrix --write-readme  # replace the table between the README markers

Decrypting needs both the role's own policy and the key policy (the key trusts the account only for
the principals its conditions name); the other questions are decided by the role's policies alone
(the buckets' policies only deny, e.g. outside the VPC endpoints, never grant a project role more).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from settings import ResourceNames, Settings, load_settings
from tools.iam_eval import Request, Role, allows, conditions_hold, read_roles, statement_matches

README = Path(__file__).resolve().parent.parent / "README.md"
START_MARKER = "<!-- authz-matrix:start -->"
END_MARKER = "<!-- authz-matrix:end -->"
YES, NO = "yes", "-"


@dataclass(frozen=True)
class Question:
    """A column of the matrix: a header and the request(s) whose permission answers it."""

    header: str
    requests: Callable[[ResourceNames, str, str], list[Request]]


def _sagemaker(names: ResourceNames, account: str, region: str, resource: str) -> str:
    return f"arn:aws:sagemaker:{region}:{account}:{resource}"


def _artifact(names: ResourceNames, key: str) -> str:
    return f"arn:aws:s3:::{names.artifacts_bucket}/{key}"


QUESTIONS = (
    Question(
        "approve a model version",
        lambda n, a, r: [
            Request(
                "sagemaker:UpdateModelPackage",
                _sagemaker(n, a, r, f"model-package/{n.model_package_group}/7"),
                {"sagemaker:ModelApprovalStatus": "Approved"},
            )
        ],
    ),
    Question(
        "start training pipeline",
        lambda n, a, r: [
            Request("sagemaker:StartPipelineExecution", _sagemaker(n, a, r, f"pipeline/{n.pipeline}"))
        ],
    ),
    Question(
        "write models/ or champion/",
        lambda n, a, r: [
            Request("s3:PutObject", _artifact(n, f"{n.models_prefix}x/model.tar.gz")),
            Request("s3:PutObject", _artifact(n, f"{n.champion_prefix}model.tar.gz")),
        ],
    ),
    Question(
        "write registry/ (evaluation, baselines)",
        lambda n, a, r: [Request("s3:PutObject", _artifact(n, f"{n.registry_prefix}x/evaluation.json"))],
    ),
    Question(
        "read raw data",
        lambda n, a, r: [Request("s3:GetObject", f"arn:aws:s3:::{n.data_bucket}/{n.raw_data_prefix}x.txt")],
    ),
)


def _any(role: Role, requests: list[Request]) -> bool:
    return any(allows(role.statements, request) for request in requests)


def key_policy_admits(key_statements: list[dict], role: Role, action: str) -> bool:
    """The key policy lets ``role`` make ``action`` (explicitly, or through the account with conditions)."""
    account_root = role.arn.split(":role/")[0] + ":root"
    request = Request(action, "*", {"aws:PrincipalArn": role.arn})
    for statement in key_statements:
        principals = statement.get("Principal", {}).get("AWS", [])
        principals = principals if isinstance(principals, list) else [principals]
        if role.arn not in principals and account_root not in principals:
            continue
        # Trusting the account without conditions delegates to IAM; with aws:PrincipalArn it names users.
        if (
            statement.get("Effect") == "Allow"
            and statement_matches(statement, request)
            and conditions_hold(statement.get("Condition", {}), request.context, deny=False)
        ):
            return True
    return False


def key_statements(templates: Mapping[str, dict]) -> tuple[str, list[dict]]:
    """(rendered ARN placeholder, statements) of the project's KMS key."""
    for template in templates.values():
        for logical, resource in template.get("Resources", {}).items():
            if resource["Type"] == "AWS::KMS::Key":
                return f"${{{logical}.Arn}}", resource["Properties"]["KeyPolicy"]["Statement"]
    raise ValueError("no AWS::KMS::Key in the templates")


def passable_roles(role: Role, roles: Mapping[str, Role]) -> list[str]:
    """Names of the project roles this role may pass (iam:PassRole), whatever the service."""
    return sorted(
        other.name for other in roles.values() if allows(role.statements, Request("iam:PassRole", other.arn))
    )


def matrix_rows(templates: Mapping[str, dict], settings: Settings) -> list[list[str]]:
    """One row per role of `templates`: its answer to each question, decrypt and pass-role cells."""
    names, account, region = settings.names, settings.aws.account, settings.aws.region
    roles = read_roles(templates)
    key_arn, key_policy = key_statements(templates)
    rows = []
    for name in sorted(roles):
        role = roles[name]
        cells = [YES if _any(role, q.requests(names, account, region)) else NO for q in QUESTIONS]
        decrypt = allows(role.statements, Request("kms:Decrypt", key_arn)) and key_policy_admits(
            key_policy, role, "kms:Decrypt"
        )
        passes = passable_roles(role, roles)
        short = [p.removeprefix(f"{names.prefix}-").removesuffix(f"-{region}") for p in passes]
        rows.append([_short(name, names, region), *cells, YES if decrypt else NO, ", ".join(short) or NO])
    return rows


def _short(name: str, names: ResourceNames, region: str) -> str:
    if name.startswith("${"):
        return f"{name[2:-1]} (CDK's own, unnamed)"
    return name.removeprefix(f"{names.prefix}-").removesuffix(f"-{region}")


def render_table(rows: list[list[str]]) -> str:
    """`rows` as a Markdown table with the matrix's header."""
    headers = ["role", *(q.header for q in QUESTIONS), "decrypt project data", "may pass role"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def matrix_markdown(templates: Mapping[str, dict], settings: Settings) -> str:
    """The authorization matrix of `templates` as a Markdown table."""
    return render_table(matrix_rows(templates, settings))


def readme_with_matrix(readme_text: str, table: str) -> str:
    """`readme_text` with `table` between the matrix markers, replacing what was there."""
    start, end = readme_text.index(START_MARKER), readme_text.index(END_MARKER)
    return readme_text[: start + len(START_MARKER)] + "\n" + table + "\n" + readme_text[end:]


def readme_matrix(readme_text: str) -> str:
    """The matrix table between the markers of `readme_text`."""
    start, end = readme_text.index(START_MARKER), readme_text.index(END_MARKER)
    return readme_text[start + len(START_MARKER) : end].strip()


def synthesized_templates(cdk_out: Path | None) -> dict[str, dict]:
    """The templates of the `cdk_out` assembly, or of a fresh in-process synth when None."""
    from tools.iam_eval import load_templates

    if cdk_out is not None:
        return load_templates(cdk_out)
    import json

    from app import build_app

    context = json.loads((README.parent / "cdk.json").read_text())["context"]
    outdir = tempfile.mkdtemp(prefix="authz-")
    build_app(context, outdir=outdir).synth()
    return load_templates(Path(outdir))


def main(argv: list[str] | None = None) -> int:
    """Print the authorization matrix (and write it into the README with `--write-readme`); return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cdk-out", type=Path, default=None, help="cloud assembly folder (default: synth)")
    parser.add_argument("--write-readme", action="store_true", help="replace the README's matrix")
    args = parser.parse_args(argv)
    table = matrix_markdown(synthesized_templates(args.cdk_out), load_settings())
    if args.write_readme:
        README.write_text(readme_with_matrix(README.read_text(), table))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
