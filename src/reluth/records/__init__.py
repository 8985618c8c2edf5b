"""Read models across domains — patient list, timeline, adverse events, queries, visits, audit
history, dashboard — already filtered by the policy for the actor who reads them, so no page,
API route or command can show what the actor may not see."""
