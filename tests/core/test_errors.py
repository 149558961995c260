"""The one error tree: every reported error has one category and a stable, unique code."""

from __future__ import annotations

import importlib

import pytest

from clearlane.core.errors import CATEGORIES, ClearlaneError, category

# Every module that declares a ClearlaneError (the tree is only as complete as this list;
# test_no_error_outside_the_tree catches a module that declares one and is missing here).
DECLARING_MODULES = (
    "clearlane.core.money",
    "clearlane.core.config.model",
    "clearlane.core.engine.core",
    "clearlane.node.intake.readers",
    "clearlane.node.runtime",
    "clearlane.node.signing",
    "clearlane.node.auditor",
    "clearlane.evidence.prove",
    "clearlane.adapters.sql.store",
    "clearlane.node.writer",
    "clearlane.adapters.http.auth",
    "clearlane.adapters.nats.messages",
    "clearlane.adapters.nats.worker",
    "clearlane.adapters.embedded",
    "clearlane.core.recon.amounts",
    "clearlane.core.recon.batchreport",
    "clearlane.core.recon.matching",
    "clearlane.core.cases.workflow",
    "clearlane.node.recon.camt",
    "clearlane.node.recon.mt940",
    "clearlane.node.recon.sources",
    "clearlane.core.risk.scenario",
    "clearlane.node.stress",
    "clearlane.core.recon.eod",
    "clearlane.node.recon.cases",
    "clearlane.core.monitor.canary",
    "clearlane.node.monitor.sources",
)

EXPECTED = {
    "DecimalError": ("InputError", "DECIMAL_INVALID"),
    "ConfigError": ("InputError", "CONFIG_INVALID"),
    "EngineError": ("IntegrityError", "ENGINE_CANNOT_APPLY"),
    "IngestError": ("InputError", "FILE_UNUSABLE"),
    "SubmissionRefused": ("InputError", "SUBMISSION_REFUSED"),
    "RuntimeUnavailable": ("Unavailable", "RUNTIME_UNAVAILABLE"),
    "KeyStoreError": ("InputError", "KEY_DIRECTORY_UNUSABLE"),
    "AuditError": ("IntegrityError", "AUDIT_CHAIN_BROKEN"),
    "EvidenceError": ("NotFound", "NO_PROOF"),
    "StoreError": ("IntegrityError", "STORE_UNUSABLE"),
    "WriterError": ("Unavailable", "WRITER_FAILED"),
    "KeyError_": ("InputError", "API_KEY_REQUEST_INVALID"),
    "BusError": ("InputError", "BUS_SETTING_INVALID"),
    "LockLost": ("Unavailable", "PARTITION_LOCK_LOST"),
    "ChainChoiceError": ("InputError", "CHAIN_OPTIONS_INVALID"),
    "AmountError": ("InputError", "RECON_AMOUNT_INVALID"),
    "BatchReportError": ("InputError", "RECON_BATCH_REPORT_INVALID"),
    "MatchInputError": ("InputError", "RECON_RECORD_ID_DUPLICATE"),
    "ToleranceError": ("InputError", "RECON_TOLERANCE_INVALID"),
    "CaseError": ("InputError", "CASE_ACTION_INVALID"),
    "CamtError": ("InputError", "RECON_CAMT_INVALID"),
    "Mt940Error": ("InputError", "RECON_MT940_INVALID"),
    "SourceFormatError": ("InputError", "RECON_FORMAT_UNKNOWN"),
    "ScenarioError": ("InputError", "SCENARIO_INVALID"),
    "StressSafetyViolation": ("IntegrityError", "STRESS_SAFETY_VIOLATION"),
    "BusinessDayError": ("InputError", "CLOSE_DAY_INVALID"),
    "CaseQueryError": ("InputError", "CASE_QUERY_INVALID"),
    "CanaryIntervalError": ("InputError", "CANARY_INTERVAL_TOO_SHORT"),
    "MonitorInputError": ("InputError", "MONITOR_INPUT_INVALID"),
}


def all_errors() -> list[type[ClearlaneError]]:
    for name in DECLARING_MODULES:
        importlib.import_module(name)
    found: list[type[ClearlaneError]] = []
    todo = list(ClearlaneError.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [c for c in found if c not in CATEGORIES and c.__module__.startswith("clearlane.")]


def test_every_error_has_its_category_and_code() -> None:
    got = {c.__name__: (category(c).__name__, c.code) for c in all_errors()}
    assert got == EXPECTED


def test_codes_are_unique() -> None:
    codes = [c.code for c in (*CATEGORIES, *all_errors())]
    assert len(codes) == len(set(codes))


def test_bugs_stay_outside_the_tree() -> None:
    from clearlane.core.engine.netting import NettingInvariantError
    from clearlane.core.ledger.entries import LedgerInvariantError

    for bug in (NettingInvariantError, LedgerInvariantError):
        assert not issubclass(bug, ClearlaneError)


@pytest.mark.parametrize("name", ["DecimalError", "ConfigError", "BusError", "KeyError_"])
def test_builtin_bases_are_kept(name: str) -> None:
    # Callers that catch ValueError (pydantic validators, parsers) still catch these.
    (cls,) = [c for c in all_errors() if c.__name__ == name]
    assert issubclass(cls, ValueError)


def test_an_instance_may_narrow_its_code() -> None:
    from clearlane.node.intake.readers import IngestError

    exc = IngestError(IngestError.MISSING_COLUMN, "x.csv: missing required column 'price'")
    assert exc.code == "MISSING_COLUMN" and IngestError.code == "FILE_UNUSABLE"
