"""Getting a package to a participant: AES zip and passphrase, destinations (base types, folder,
Nextcloud, DICOM node), the ledger, the share lifecycle, the e-mail text. May import dicom, deid,
nifti, net and the top-level modules; concrete destinations import only `base`, never the registry."""
