"""The service's audit of itself and of its classifier: volumes, timeliness, outcomes and concordance.

Seams, one module each, importing one way: :mod:`.stats` (Wilson intervals,
percentiles, working days, ROC: no store), :mod:`.data` (the SQL that reads one
row per lesion of the referrals dated in a period), :mod:`.compute` (every
figure from those rows, overall and per month, hub, model version and
Fitzpatrick group), :mod:`.export` (CSV tables with small cells suppressed, the
HTML), :mod:`.plots` (matplotlib, rendered server-side to PNG), :mod:`.views`
(the ``/reports`` page) and :mod:`.cli` (``python -m dashboard report``).

A report never carries a patient identifier (NHS number, date of birth,
referral reference): patients are counted by an internal number that never
leaves :mod:`.compute`, and breaches are listed by referral key.
"""
