"""Images and masks on disk, data sets and their layouts, class remapping, augmentation.

The synthetic scene generator lives in :mod:`core.data.synthetic`."""
