"""Bundle recipes for inference: the datalist of a folder of DICOM series (one entry per series folder) or of
images, for ``LoadImaged`` with the package's readers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ldct_invrep.data.natural import IMAGE_SUFFIXES
from ldct_invrep.errors import InputError, as_flag
from ldct_invrep.recipes.natural import image_paths

if TYPE_CHECKING:
    from ldct_invrep.io.dicom_series import SeriesInfo

__all__ = ["image_datalist", "series_datalist"]


def series_datalist(
    input_dir: str | os.PathLike | None,
    recursive: bool = True,
    output_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> list[dict[str, str]]:
    """The inference datalist of a folder of DICOM CT series: ``[{"image": series folder}]``, one entry per
    series found under ``input_dir`` (sub-folders too with ``recursive``), for ``LoadImaged`` with
    ``io.LIRDicomReader``. Each series must have its own folder (MONAI's convention for DICOM series); a folder
    holding several series raises ``InputError`` naming it (``ldct-invrep denoise --all-series`` takes those).

    With ``output_dir``, the outputs are checked before any work, as ``ldct-invrep denoise`` checks its own
    (``io.volumes.check_output``): each series' ``<output_dir>/<name>/`` (``io.series_folder_name``) must lie
    outside ``input_dir`` (where a later run would read it as input), be the output of no other series, and
    not exist unless ``overwrite`` and written by ldct-invrep."""
    from ldct_invrep.io import scan_all_series, scan_series, series_folder_name
    from ldct_invrep.io.volumes import check_output, is_nifti_name

    if input_dir is None:
        raise InputError("inference: no input folder; pass --input_dir (a folder of DICOM series)")
    recursive = as_flag(recursive, "recursive")
    if Path(input_dir).is_file():
        if is_nifti_name(input_dir):
            raise InputError(f"{input_dir}: a NIfTI file; the bundles read DICOM series (ldct-invrep denoise reads NIfTI)")
        folders = {str(input_dir): scan_series(input_dir)}
    else:
        by_folder: dict[str, list[SeriesInfo]] = {}
        for info in scan_all_series(input_dir, recursive=recursive):
            parents = {str(p.parent) for p in info.paths}
            if len(parents) != 1:
                raise InputError(f"{input_dir}: series {info.series_uid} is spread over {len(parents)} folders; give each series one folder")
            by_folder.setdefault(parents.pop(), []).append(info)
        for folder, several in by_folder.items():
            if len(several) > 1:
                raise InputError(
                    f"{folder}: {len(several)} DICOM series in one folder; give each series its own folder "
                    "(or use ldct-invrep denoise --all-series)"
                )
        folders = {folder: infos[0] for folder, infos in by_folder.items()}
    if output_dir is not None:
        overwrite = as_flag(overwrite, "overwrite")
        targets: dict[Path, str] = {}
        for folder, info in sorted(folders.items()):
            target = Path(output_dir) / series_folder_name(info.series_uid)
            if target in targets:
                raise InputError(
                    f"{folder}: its output {target} would also be that of {targets[target]} (no SeriesInstanceUID "
                    "in either); denoise them one at a time"
                )
            targets[target] = folder
            check_output(Path(input_dir), target, overwrite)
    return [{"image": folder} for folder in sorted(folders)]


def image_datalist(input_dir: str | os.PathLike | None, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[dict[str, str]]:
    """The inference datalist of a folder of images: ``[{"image": file}]`` (``data.natural.list_images`` order).
    Two images of one stem (``a.png``, ``a.jpg``) are refused: their outputs (``<stem>.png``) would be one file."""
    if input_dir is None:
        raise InputError("inference: no input folder; pass --input_dir (a folder of images)")
    paths = image_paths(input_dir, suffixes)
    stems: dict[str, Path] = {}
    for p in paths:
        if p.stem in stems:
            raise InputError(f"{p}: its output {p.stem}.png would also be that of {stems[p.stem].name}; rename one of them")
        stems[p.stem] = p
    return [{"image": str(p)} for p in paths]
