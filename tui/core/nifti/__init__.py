"""Images for people: DICOM -> NIfTI conversion (dcm2niix, dicom2nifti), deface/reface, head renders, the
face check, previews and the participant's documents. May import dicom, deid and the top-level modules."""
