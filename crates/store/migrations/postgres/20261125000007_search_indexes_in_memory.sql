-- Searches are answered by each node's in-memory index (crates/core/src/search), which finds
-- words and sorts by every column itself. The SQL search only answers while that index loads
-- after a start, so the trigram index and the sort indexes it alone used cost every write (an
-- import of 100,000 people: 10.8k -> 15.9k rows/s without them) for a few seconds' benefit.
-- The default sort (last name) keeps its index, so the fallback's first page stays quick.
DROP INDEX people_search_trgm;
DROP INDEX people_by_first_name;
DROP INDEX people_by_created_at;
DROP INDEX people_by_last_login_at;
