"""Import torchvision even where its compiled operators do not match the installed torch.

The torchvision wheel published for a torch release is built against the CUDA build of torch. Next
to the CPU-only build of the same torch release, ``import torchvision`` fails with
``RuntimeError: operator torchvision::nms does not exist``: torchvision's meta registrations refer to
operators its C++ extension failed to register. modelzoo needs only torchvision's datasets and
transforms, never those detection operators, so when (and only when) that exact error occurs we
declare the operator schemas ourselves, with no implementation, and import again. Calling one of
those operators then fails loudly, which is the honest outcome on such an install.

Everything in modelzoo imports torchvision through :func:`import_torchvision`.
"""

from __future__ import annotations

import sys
from types import ModuleType

import torch

# Schemas of torchvision's C++ operators (torchvision/csrc/ops/*.cpp), declared only as a fallback.
_OPERATOR_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor",
    "qroi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor",
    "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, "
    "int sampling_ratio, bool aligned) -> Tensor",
    "ps_roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, int sampling_ratio) -> (Tensor, Tensor)",
    "_ps_roi_align_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale, "
    "SymInt pooled_height, SymInt pooled_width, int sampling_ratio, SymInt batch_size, "
    "SymInt channels, SymInt height, SymInt width) -> Tensor",
    "roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width) -> (Tensor, Tensor)",
    "_roi_pool_backward(Tensor grad, Tensor rois, Tensor argmax, float spatial_scale, "
    "SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, "
    "SymInt height, SymInt width) -> Tensor",
    "ps_roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width) -> (Tensor, Tensor)",
    "_ps_roi_pool_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale, "
    "SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, "
    "SymInt height, SymInt width) -> Tensor",
    "deform_conv2d(Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, "
    "SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, "
    "SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) -> Tensor",
    "_deform_conv2d_backward(Tensor grad, Tensor input, Tensor weight, Tensor offset, "
    "Tensor mask, Tensor bias, SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, "
    "SymInt dilation_h, SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) "
    "-> (Tensor, Tensor, Tensor, Tensor, Tensor)",
)

_MISSING_OPERATOR = "operator torchvision::"
_library: torch.library.Library | None = None  # kept alive: dropping it unregisters the schemas


def _declare_missing_operators() -> None:
    global _library
    if _library is not None:
        return
    _library = torch.library.Library("torchvision", "FRAGMENT")
    for schema in _OPERATOR_SCHEMAS:
        name = schema.split("(", 1)[0]
        if not _operator_exists(name):
            _library.define(schema)


def _operator_exists(name: str) -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
    except RuntimeError:
        return False
    return True


def _forget_partial_import() -> None:
    for module_name in [
        m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")
    ]:
        del sys.modules[module_name]


def import_torchvision() -> ModuleType:
    """Return the ``torchvision`` module, declaring its operator schemas if a CPU torch lacks them."""
    if "torchvision" in sys.modules and hasattr(sys.modules["torchvision"], "datasets"):
        return sys.modules["torchvision"]
    try:
        import torchvision
    except RuntimeError as error:
        if _MISSING_OPERATOR not in str(error):
            raise
        _forget_partial_import()
        _declare_missing_operators()
        import torchvision
    return torchvision
