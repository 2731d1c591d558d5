"""Bundle recipes for inference: the datalist of a folder of DICOM series (one entry per series folder) or of
images, for ``LoadImaged`` with the package's readers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ldct_invrep.data.natural import IMAGE_SUFFIXES
from ldct_invrep.errors import InputError
from ldct_invrep.recipes.natural import image_paths

__all__ = ["image_datalist", "series_datalist"]


def series_datalist(input_dir: str | os.PathLike | None, recursive: bool = True) -> list[dict[str, str]]:
    """The inference datalist of a folder of DICOM CT series: ``[{"image": series folder}]``, one entry per
    series found under ``input_dir`` (sub-folders too with ``recursive``), for ``LoadImaged`` with
    ``io.LIRDicomReader``. Each series must have its own folder (MONAI's convention for DICOM series); a folder
    holding several series raises ``InputError`` naming it (``ldct-invrep denoise --all-series`` takes those)."""
    from ldct_invrep.io import scan_all_series

    if input_dir is None:
        raise InputError("inference: no input folder; pass --input_dir (a folder of DICOM series)")
    if Path(input_dir).is_file():
        return [{"image": str(input_dir)}]
    folders: dict[str, list[str]] = {}
    for info in scan_all_series(input_dir, recursive=recursive):
        parents = {str(p.parent) for p in info.paths}
        if len(parents) != 1:
            raise InputError(f"{input_dir}: series {info.series_uid} is spread over {len(parents)} folders; give each series one folder")
        folders.setdefault(parents.pop(), []).append(info.series_uid)
    for folder, uids in folders.items():
        if len(uids) > 1:
            raise InputError(
                f"{folder}: {len(uids)} DICOM series in one folder; give each series its own folder "
                "(or use ldct-invrep denoise --all-series)"
            )
    return [{"image": folder} for folder in sorted(folders)]


def image_datalist(input_dir: str | os.PathLike | None, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[dict[str, str]]:
    """The inference datalist of a folder of images: ``[{"image": file}]`` (``data.natural.list_images`` order)."""
    if input_dir is None:
        raise InputError("inference: no input folder; pass --input_dir (a folder of images)")
    return [{"image": str(p)} for p in image_paths(input_dir, suffixes)]
