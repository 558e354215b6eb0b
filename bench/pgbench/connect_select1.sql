-- Connection cost: with -C every transaction opens (and authenticates) a
-- new connection; the query is the cheapest possible first query.
SELECT 1;
