"""One DICOM object per photograph of a signed referral, built with pydicom.

The dermoscopic view is a **Dermoscopic Photography Image** (Supplement 221, SOP class
1.2.840.10008.5.1.4.1.1.77.1.7, modality ``DMS``); close-up and regional views are **VL Photographic
Images** (1.2.840.10008.5.1.4.1.1.77.1.4, modality ``XC``). The kiosk's JPEG bytes are encapsulated as
they are (JPEG Baseline transfer syntax, :mod:`.jpeg` describes the stream). Patient: the NHS number as
Patient ID issued by the NHS (OID 2.16.840.1.113883.2.1.4.1), the date of birth and sex; no name (the
kiosk does not capture one). Study per referral (accession number = referral reference, study date =
referral date, the referring practice by its ODS code), one series per lesion and view, the body site
coded (:mod:`.codes`) with laterality, acquisition date and time from the kiosk (UTC, with the offset),
the kiosk as equipment (manufacturer "DermKiosk", its id and software version). Every UID is derived
(:mod:`.uids`): a second export is identical.
"""

from __future__ import annotations

from datetime import timezone

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID

from ..exportfacts import VIEWS, ExportImage, ExportLesion, ExportReferral
from . import codes, jpeg, uids

DERMOSCOPIC = "1.2.840.10008.5.1.4.1.1.77.1.7"
VL_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4"
#: View -> (SOP class, modality).
SOP_OF_VIEW = {"dermoscopic": (DERMOSCOPIC, "DMS"), "close-up": (VL_PHOTOGRAPHIC, "XC"),
               "regional": (VL_PHOTOGRAPHIC, "XC")}
NHS_NUMBER_OID = "2.16.840.1.113883.2.1.4.1"
SEX = {"female": "F", "male": "M", "indeterminate": "O"}
MANUFACTURER = "DermKiosk"
#: Implementation Class UID of the files this writes (a derived UID: no registered root needed).
IMPLEMENTATION_UID = "2.25.240915126389468217360315513532547045217"
#: Our local coding scheme for ODS organisation codes (PS3.3 8.2: private schemes start with "99").
ODS_SCHEME = "99NHSODS"


def _code(code: codes.Code) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code
    return item


def _dt(moment) -> tuple[str, str, str]:
    """DICOM date, time and date-time of an aware datetime, in UTC (the objects say +0000)."""
    utc = moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return utc.strftime("%Y%m%d"), utc.strftime("%H%M%S.%f"), utc.strftime("%Y%m%d%H%M%S.%f")


def _patient_and_study(ds: Dataset, ref: ExportReferral) -> None:
    s = ref.signed
    ds.PatientName = ""
    ds.PatientID = s.nhs_number
    ds.IssuerOfPatientID = "NHS"
    issuer = Dataset()
    issuer.UniversalEntityID = NHS_NUMBER_OID
    issuer.UniversalEntityIDType = "ISO"
    ds.IssuerOfPatientIDQualifiersSequence = [issuer]
    ds.TypeOfPatientID = "TEXT"
    ds.PatientBirthDate = s.date_of_birth.strftime("%Y%m%d") if s.date_of_birth else ""
    ds.PatientSex = SEX.get(ref.sex or "", "")
    ds.StudyInstanceUID = uids.study_uid(s.key)
    ds.StudyDate = s.referral_date.strftime("%Y%m%d")
    ds.StudyTime = ""
    ds.AccessionNumber = s.reference[:16]
    ds.StudyID = s.referral_id.hex[:16]
    ds.StudyDescription = "Teledermatology referral"
    ds.ReferringPhysicianName = ""
    if s.practice_ods:
        practice = (s.practice_ods, ODS_SCHEME, f"GP practice {s.practice_ods}")
        who = Dataset()
        who.PersonIdentificationCodeSequence = [_code(practice)]
        who.InstitutionName = f"GP practice {s.practice_ods}"
        ds.ReferringPhysicianIdentificationSequence = [who]


def _anatomy(ds: Dataset, lesion: ExportLesion) -> None:
    region, modifier = codes.site_code(lesion.body_site, lesion.detail)
    item = _code(region)
    side = codes.laterality_code(lesion.laterality)
    modifiers = [m for m in (modifier, side if lesion.laterality == "midline" else None) if m]
    if modifiers:
        item.AnatomicRegionModifierSequence = [_code(m) for m in modifiers]
    ds.AnatomicRegionSequence = [item]
    ds.ImageLaterality = codes.IMAGE_LATERALITY.get(lesion.laterality or "", "U")
    if lesion.detail:
        ds.ImageComments = f"{lesion.label}: {lesion.detail}"[:10240]
    else:
        ds.ImageComments = lesion.label


def build_image(ref: ExportReferral, lesion: ExportLesion, image: ExportImage, data: bytes) -> Dataset:
    """The DICOM object of one photograph (``data``: the stored JPEG bytes, carried unchanged)."""
    info = jpeg.inspect(data)
    sop_class, modality = SOP_OF_VIEW[image.view]
    sop_instance = uids.instance_uid(lesion.case_id, image.position, image.sha256)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = UID(info.transfer_syntax)
    meta.ImplementationClassUID = UID(IMPLEMENTATION_UID)
    meta.ImplementationVersionName = "DERMKIOSK"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_instance
    _patient_and_study(ds, ref)
    # series: one per lesion and view
    ds.Modality = modality
    ds.SeriesInstanceUID = uids.series_uid(lesion.case_id, image.view)
    ds.SeriesNumber = lesion.index * 10 + (VIEWS.index(image.view) + 1 if image.view in VIEWS else 9)
    ds.SeriesDescription = f"{lesion.label} {image.view}"
    # equipment: the kiosk
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = "DermKiosk kiosk"
    ds.DeviceSerialNumber = lesion.device
    ds.StationName = lesion.device[:16]
    ds.SoftwareVersions = lesion.software_version
    ds.InstitutionName = ref.signed.site
    # image
    date, time, moment = _dt(image.captured_at)
    ds.ContentDate, ds.ContentTime = date, time
    ds.AcquisitionDateTime = moment
    ds.AcquisitionDate, ds.AcquisitionTime = date, time
    ds.TimezoneOffsetFromUTC = "+0000"
    ds.InstanceNumber = image.position + 1
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PatientOrientation = ""
    ds.AcquisitionContextSequence = []
    ds.BurnedInAnnotation = "NO"
    ds.RecognizableVisualFeatures = "NO" if image.view == "dermoscopic" else "YES"
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.LossyImageCompressionRatio = f"{(info.rows * info.columns * info.samples) / len(data):.2f}"[:16]
    _anatomy(ds, lesion)
    if sop_class == DERMOSCOPIC:
        # Dermoscopic Image module: the kiosk's dermatoscope does not report these, so they are empty (unknown).
        ds.FrameOfReferenceUID = uids.frame_of_reference_uid(lesion.case_id)
        ds.PositionReferenceIndicator = ""
        ds.LightSourcePolarization = ""
        ds.EmitterColorTemperature = ""
        ds.ContactMethod = ""
        ds.OpticalMagnificationFactor = ""
    # pixels: the JPEG as it came from the kiosk
    ds.SamplesPerPixel = info.samples
    ds.PhotometricInterpretation = info.photometric
    if info.samples > 1:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = info.rows, info.columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, info.precision, info.precision - 1
    ds.PixelRepresentation = 0
    ds.PixelData = encapsulate([data])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


def build_referral(ref: ExportReferral) -> list[Dataset]:
    """Every photograph of the referral as a DICOM object, in lesion and image order."""
    out = []
    for lesion in ref.lesions:
        for image in lesion.images:
            out.append(build_image(ref, lesion, image, image.path.read_bytes()))
    return out
