"""Data: unpaired patch datasets (LIR section 4.1-4.3), datalists, dataset scanners, CT training cache.

Heavy or optional readers (``ldct_invrep.io``, the low-dose simulator) are imported only when used.
"""

from ldct_invrep.data.ct_cache import CTCache, build_ct_training_cache, load_ct_training_cache
from ldct_invrep.data.datalist import load_datalist, write_datalist
from ldct_invrep.data.datasets import AIR_THRESHOLD_NET, PairedSliceDataset, UnpairedPatchDataset, split_unpaired
from ldct_invrep.data.image_sets import ImageSetReport, build_image_manifest, verify_image_set
from ldct_invrep.data.manifests import load_manifest, manifest_dir
from ldct_invrep.data.natural import load_gray_image, load_gray_images, load_image_8bit, rgb_to_gray
from ldct_invrep.data.noisy_sets import NoisyImage, noisy_test_set
from ldct_invrep.data.preparation import prepare, write_image_set_datalist, write_mayo_datalist, write_tcia_datalist
from ldct_invrep.data.scanners import ScanReport, SeriesScan, format_report, scan_mayo2016, scan_tcia_ldct
from ldct_invrep.data.slices import DicomSliceSequence, domain_paths

__all__ = [
    "AIR_THRESHOLD_NET",
    "CTCache",
    "DicomSliceSequence",
    "ImageSetReport",
    "NoisyImage",
    "PairedSliceDataset",
    "ScanReport",
    "SeriesScan",
    "UnpairedPatchDataset",
    "build_ct_training_cache",
    "build_image_manifest",
    "domain_paths",
    "format_report",
    "load_ct_training_cache",
    "load_datalist",
    "load_gray_image",
    "load_gray_images",
    "load_image_8bit",
    "load_manifest",
    "manifest_dir",
    "noisy_test_set",
    "prepare",
    "rgb_to_gray",
    "scan_mayo2016",
    "scan_tcia_ldct",
    "split_unpaired",
    "verify_image_set",
    "write_datalist",
    "write_image_set_datalist",
    "write_mayo_datalist",
    "write_tcia_datalist",
]
