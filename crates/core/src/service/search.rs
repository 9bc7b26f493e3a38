//! People search, answered from this node's in-memory [`SearchIndex`] once it is loaded, and
//! by the store's SQL until then (or if the index had to give up): slower, just as exact.
//!
//! Before each search the index reads the store's change feed from where it last stopped, so
//! that it answers with every write committed before the search began, whichever node or
//! process made it (another `usher serve` on the same PostgreSQL, `usher import` on the same
//! SQLite file). Searches arriving while one such read runs wait for it rather than repeat it.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use crate::people::Person;
use crate::query::{Page, UserQuery};
use crate::search::{ChangeCursor, OrderNeeded, SearchHits, SearchIndex};
use crate::store::Store;
use crate::ServiceError;

use super::Usher;

/// People read from the change feed per query, and applied per write-lock.
const FEED_PAGE: u32 = 5_000;

/// After reading this many changed people, the orders are brought up to date at once rather
/// than by whichever later search first needs each.
const REFRESH_ORDERS_AFTER: usize = 4_096;

const OFF: u8 = 0;
const LOADING: u8 = 1;
const READY: u8 = 2;
const GAVE_UP: u8 = 3;

/// The index and how far into the change feed it has read.
struct Indexed {
    index: SearchIndex,
    cursor: ChangeCursor,
}

pub struct PeopleIndex {
    state: RwLock<Indexed>,
    /// Held while the change feed is read; holds when the last read began.
    feed: tokio::sync::Mutex<Option<Instant>>,
    status: AtomicU8,
}

impl Default for PeopleIndex {
    fn default() -> Self {
        Self {
            state: RwLock::new(Indexed {
                index: SearchIndex::new(),
                cursor: ChangeCursor::origin(),
            }),
            feed: tokio::sync::Mutex::new(None),
            status: AtomicU8::new(OFF),
        }
    }
}

impl PeopleIndex {
    /// Whether searches are answered from the index.
    pub fn is_ready(&self) -> bool {
        self.status.load(Ordering::Acquire) == READY
    }

    /// Reads every person into the index, then answers searches from it.
    async fn load(&self, store: &dyn Store) -> Result<(), ServiceError> {
        self.status.store(LOADING, Ordering::Release);
        let started = Instant::now();
        match self.catch_up(store, started).await {
            Ok(_) => {
                self.status.store(READY, Ordering::Release);
                let state = self.read();
                tracing::info!(
                    people = state.index.len(),
                    mib = state.index.heap_bytes() / (1 << 20),
                    seconds = started.elapsed().as_secs_f64(),
                    "search index loaded"
                );
                Ok(())
            }
            Err(e) => {
                self.give_up(&e);
                Err(e)
            }
        }
    }

    fn give_up(&self, why: &ServiceError) {
        tracing::warn!("the search index is off, searches use the store: {why}");
        self.status.store(GAVE_UP, Ordering::Release);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Indexed> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Indexed> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies every change committed before `asked_at`, unless a read of the feed that began
    /// after it has already done so.
    /// Returns how many people it read.
    async fn catch_up(&self, store: &dyn Store, asked_at: Instant) -> Result<usize, ServiceError> {
        let mut last_began = self.feed.lock().await;
        if last_began.is_some_and(|began| began >= asked_at) {
            return Ok(0);
        }
        *last_began = Some(Instant::now());
        let since = self.read().cursor.clone();
        // Taken first: whatever commits while we read is read again next time, never lost.
        let next = store.people_change_cursor().await?;
        let removed = store.removed_people(&since).await?;
        if !removed.is_empty() {
            let mut state = self.write();
            for id in removed {
                state.index.remove(id);
            }
        }
        let mut after = None;
        let mut applied = 0usize;
        loop {
            let people = store.changed_people(&since, after, FEED_PAGE).await?;
            applied += people.len();
            {
                let mut state = self.write();
                for person in &people {
                    state
                        .index
                        .upsert(person)
                        .map_err(|e| ServiceError::Internal(e.to_string()))?;
                }
            }
            if people.len() < FEED_PAGE as usize {
                break;
            }
            after = people.last().map(|p| p.change);
        }
        let mut state = self.write();
        state.cursor = next;
        if applied >= 10 * FEED_PAGE as usize {
            tracing::info!(
                read = applied,
                people = state.index.len(),
                mib = state.index.heap_bytes() / (1 << 20),
                "search index caught up"
            );
        }
        Ok(applied)
    }

    /// The total and page ids of `query`, building a sort order first if needed.
    fn answer(&self, query: &UserQuery) -> SearchHits {
        loop {
            let needed =
                match self
                    .read()
                    .index
                    .search(&query.filter, query.sort, query.offset, query.limit)
                {
                    Ok(hits) => return hits,
                    Err(OrderNeeded(column)) => column,
                };
            let mut state = self.write();
            let still_needed = state
                .index
                .search(&query.filter, query.sort, query.offset, query.limit)
                .is_err();
            if still_needed {
                state.index.build_order(needed);
            }
        }
    }
}

impl Usher {
    /// Loads the search index in the background; searches use it once it is loaded. `usher
    /// serve` calls this; commands that only write (import, admin) do not need it.
    /// A store that fails meanwhile (a database restarting) is asked again every few
    /// seconds; a person the index cannot hold turns it off for good (the store answers).
    pub fn start_search_index(&self) {
        let usher = self.clone();
        tokio::spawn(async move {
            while let Err(ServiceError::Store(_)) = usher.load_search_index().await {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        });
    }

    /// Loads the search index now, returning once searches use it.
    pub async fn load_search_index(&self) -> Result<(), ServiceError> {
        self.people_index.load(self.store.as_ref()).await?;
        let index = self.people_index.clone();
        let _ = tokio::task::spawn_blocking(move || index.write().index.refresh_orders()).await;
        Ok(())
    }

    /// Whether searches are answered from the in-memory index.
    pub fn search_index_ready(&self) -> bool {
        self.people_index.is_ready()
    }

    /// How many people the in-memory index holds, once it answers searches.
    pub fn search_index_len(&self) -> Option<u64> {
        let index = &self.people_index;
        index.is_ready().then(|| index.read().index.len())
    }

    /// One page of the people `query` selects and their exact total, without access checks.
    pub(crate) async fn find_people(
        &self,
        query: &UserQuery,
    ) -> Result<Page<Person>, ServiceError> {
        if let Some(hits) = self.search_index(query).await {
            let items = self.store.people_by_ids(&hits.ids).await?;
            return Ok(Page {
                items,
                total: hits.total,
            });
        }
        Ok(self.store.search_people(query).await?)
    }

    /// The index's answer, or `None` when the store must answer.
    async fn search_index(&self, query: &UserQuery) -> Option<SearchHits> {
        let index = &self.people_index;
        if !index.is_ready() {
            return None;
        }
        let read = match index.catch_up(self.store.as_ref(), Instant::now()).await {
            Ok(read) => read,
            Err(ServiceError::Internal(why)) => {
                index.give_up(&ServiceError::Internal(why));
                return None;
            }
            // The store failed: it answers (or fails) the search itself.
            Err(_) => return None,
        };
        let index: Arc<PeopleIndex> = self.people_index.clone();
        let query = query.clone();
        tokio::task::spawn_blocking(move || {
            if read >= REFRESH_ORDERS_AFTER {
                index.write().index.refresh_orders();
            }
            index.answer(&query)
        })
        .await
        .ok()
    }
}
