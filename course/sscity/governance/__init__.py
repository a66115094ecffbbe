"""Governance (module 05): ethics, privacy, equity and technology maturity as decisions.

One idea per file:

- ``anonymise``  anonymisation after Japan's APPI (匿名加工情報): identifiers deleted,
                 quasi-identifiers generalised along hierarchies, unusual values top-coded,
                 a Mondrian-style k-anonymiser; k-anonymity, l-diversity, t-closeness;
                 pseudonymisation (仮名加工情報) with the key kept apart; a report of what
                 was done and what was lost.
- ``reidentify`` a linkage attack of a release against an outside table: how many records
                 are uniquely re-identified, before and after anonymisation.
- ``dp``         differential privacy with the OpenDP library: counts, sums and means per
                 group under a budget, their accuracy, and budget accounting.
- ``equity``     Gini, Theil and Atkinson indices; group disparity of eligibility rules;
                 spatial equity of accessible-route access by district.
- ``pia``        privacy impact assessment after ISO/IEC 29134 (JIS X 9251): threshold
                 analysis, PII flows, a risk register (likelihood x impact), a bilingual report.
- ``trl``        technology readiness levels: questions -> level -> stage (lab, living lab,
                 deployment with a completed PIA).
- ``sib``        social impact bonds: stepped payout schedules and the investor's return.
- ``audit``      the platform's hash-chained ledger as an audit log, its limits, and anchoring.
- ``published``  an outsider's audit of what a platform tenant publishes about people: small
                 cells, totals that give suppressed cells back, estimates without their error,
                 identifiers, homes published as places.

Import from the submodules, e.g. ``from sscity.governance.equity import gini``.
"""
