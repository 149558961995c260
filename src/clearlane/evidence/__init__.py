"""evidence owns what is read back out of a store for someone who does not trust it: trade
inclusion proofs and checkpoint consistency files (``prove``), the walk of a whole store that
names the first altered record (``check``), and dispute bundles that let a third party re-net a
batch (``dispute``). Formats and encodings are in docs/AUDIT.md; the offline verifier is
:mod:`clearlane.core.proofs.verify`.
"""
