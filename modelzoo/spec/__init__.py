"""Zoo specs: the YAML format (``fields``), reading files (``loading``), checking them
(``validation``), the values they become (``records``: Spec, Run), their deterministic expansion
into runs (``expansion``) and the JSON Schema (``schema``).

Why a hand-written key table and not a validation library: a prototype of the training section
on pydantic v2 gave messages without the offending value ("Input should be 'tanh', 'relu' ..."),
lost the list of valid keys for a typo ("Extra inputs are not permitted"), and needed models
built at run time for the registries (datasets, architectures, inits grow by registration) plus
a TypeAdapter per key for grid values; the table is ~100 lines of checks that say
"training.activation: unknown value 'tahn'; choose one of: tanh, relu, ..." and also drives the
docs and the JSON Schema.
"""

from .expansion import (
    configurations,
    expand,
    factor_column,
    resolve_stored_epochs,
    runs_by_shape,
    sample_runs,
    seeds_per_configuration,
)
from .fields import FIELDS, FORMAT, Field
from .loading import (
    apply_overrides,
    bundled_spec_dir,
    list_bundled_specs,
    load_spec,
    read_yaml,
    resolve_spec_path,
)
from .records import FACTOR_COLUMNS, Run, Spec, canonical_json, varying_columns
from .schema import describe_fields, json_schema
from .validation import check_value, grid_target, validate

__all__ = [
    "FACTOR_COLUMNS",
    "FIELDS",
    "FORMAT",
    "Field",
    "Run",
    "Spec",
    "apply_overrides",
    "bundled_spec_dir",
    "canonical_json",
    "check_value",
    "configurations",
    "describe_fields",
    "expand",
    "factor_column",
    "grid_target",
    "json_schema",
    "list_bundled_specs",
    "load_spec",
    "read_yaml",
    "resolve_spec_path",
    "resolve_stored_epochs",
    "runs_by_shape",
    "sample_runs",
    "seeds_per_configuration",
    "validate",
    "varying_columns",
]
