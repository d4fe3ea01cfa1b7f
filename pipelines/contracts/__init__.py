"""Feature contracts: the format and the loader. The validator and its readable report live in
`pipelines.contracts.validate`, imported where it is used: it needs pandas (~1 s to import), and the Pulumi
program, which only reads contracts, should not pay for it."""

from pipelines.contracts.loader import builtin_contract_path, contract_fingerprint, contract_yaml, load_contract
from pipelines.contracts.model import ColumnSpec, Contract

__all__ = [
    "ColumnSpec",
    "Contract",
    "builtin_contract_path",
    "contract_fingerprint",
    "contract_yaml",
    "load_contract",
]
