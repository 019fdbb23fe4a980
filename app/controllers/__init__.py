"""The window's controllers: QObjects that own the state and run core's jobs in workers.

``controller``    Controller: the runners, the image shown (photo + editable mask in one signal), predictions, levels
``models``        ModelInUse: the model on one thread (load, place on a device, copy for other threads)
``mask_editing``  MaskEditor: the masks being corrected, undo/redo, autosave, crash recovery
``retrainer``     Retrainer: save -> copy -> core.finetune_project -> swap -> before/after comparison
``ranker``        Ranker: uncertainty scores, "next region", ranking every image on a copy of the model
"""
