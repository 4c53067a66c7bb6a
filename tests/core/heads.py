"""The two real heads with faces in ../shared/data/head-mri (NIfTI), by vendor."""

HEADS = {
    "philips": "head-mri/philips_ingenia_elitionx_adni_mprage_1mm/nifti/adni_sag3d_mprage_dicom2nifti.nii.gz",
    "siemens": "head-mri/siemens_prisma_xa30_mprage_2mm/nifti/anat-T1w_acq-tfl_dicom2nifti.nii.gz",
}
