"""Threshold alerts: rules over minute summaries, judged once a minute is closed.

`rules` names what a rule watches and checks its threshold, `values` reads a rule's
value of one minute from that minute's summaries, and `evaluate` is the pure state
machine that turns judged minutes into notices (firing, reminder, resolved, no data).
"""
