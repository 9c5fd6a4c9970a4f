"""Server-side printing: the meta.k8s.io Table kubectl asks for (`Accept: application/json;as=Table;...`).

Columns, column definitions and cell formats follow Kubernetes' pkg/printers/internalversion/printers.go;
resources without a printer get the default Name / Created At table.
"""

from nanokube.apiserver.printing.duration import human_duration
from nanokube.apiserver.printing.negotiation import table_api_version
from nanokube.apiserver.printing.quantity import canonical_quantity
from nanokube.apiserver.printing.table import PRINTERS, printer_for, to_table

__all__ = ["PRINTERS", "canonical_quantity", "human_duration", "printer_for", "table_api_version", "to_table"]
