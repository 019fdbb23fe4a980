"""The engine's jobs: everything the app runs in its workers and the CLI runs in the foreground.

Each is a generator function that follows core/generators.py's rule (yields ``Progress``, takes
``cancel``, raises ``Cancelled``, returns its result), or a plain function where it is quick.
The app's modules hold only QObjects, signals and widgets: they submit these.

=====================  ====================================================================
``images``             an image and its mask file read for viewing; a folder or project listed
``models``             a model loaded, placed on a device with its predictors, copied
``outcome``            a prediction with what the views derive from it; level switches re-run
``pyramid_summary``    the pyramid inspector's PCA / activation summaries of each level
``finetune_project``   fine-tuning a project on its masks: defaults, the history record
``compare``            before / after: how well two models agree with a project's masks
``ranking``            what to correct next: an image's uncertainty, its regions, every image scored
``demo_model``         the built-in demo: its project and its small model, trained
=====================  ====================================================================
"""
