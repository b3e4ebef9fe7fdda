"""The audit trail's own formats and rules: the hash chain and its walker, the checkpoint file, the Ed25519 keys
that sign it, verification over rows, and the export's line format. Nothing here reads the store (see
`argobox.server.store` for the trail as stored, `argobox.server.mediation.audit_trail` for the two together).

The rest of ArgoBox uses the names below and never reaches into the modules that implement them.
"""

from argobox.server.audit.chain import (
    GENESIS,
    PRUNED_EVENT,
    UNCHECKED,
    Anchor,
    ChainBreak,
    ChainWalker,
    Row,
    Walk,
    canonical_detail,
    canonical_event,
    event_hash,
    start_break,
)
from argobox.server.audit.checkpoint import (
    CHECKPOINT_FORMAT,
    Checkpoint,
    CheckpointError,
    checkpoint_path,
    read_checkpoint,
    replacement_problem,
    signed_message,
    temporary_path,
    write_checkpoint,
)
from argobox.server.audit.export import (
    ExportFormatError,
    ExportSummary,
    export_hash_lookup,
    export_rows,
    finish_export,
    read_export_checkpoint,
    write_events,
)
from argobox.server.audit.keys import KeyFileError, Signer, VerifyKey, load_signer, load_verify_key, write_keypair
from argobox.server.audit.verify import VerifyReport, unreadable_checkpoint, verify_export, verify_rows

__all__ = [
    "CHECKPOINT_FORMAT",
    "GENESIS",
    "PRUNED_EVENT",
    "UNCHECKED",
    "Anchor",
    "ChainBreak",
    "ChainWalker",
    "Checkpoint",
    "CheckpointError",
    "ExportFormatError",
    "ExportSummary",
    "KeyFileError",
    "Row",
    "Signer",
    "VerifyKey",
    "VerifyReport",
    "Walk",
    "canonical_detail",
    "canonical_event",
    "checkpoint_path",
    "event_hash",
    "export_hash_lookup",
    "export_rows",
    "finish_export",
    "load_signer",
    "load_verify_key",
    "read_checkpoint",
    "read_export_checkpoint",
    "replacement_problem",
    "signed_message",
    "start_break",
    "temporary_path",
    "unreadable_checkpoint",
    "verify_export",
    "verify_rows",
    "write_checkpoint",
    "write_events",
    "write_keypair",
]
