//! Sources on SQLite. Every statement is filtered by scope, so a source id
//! from another scope is simply not found.

use rusqlite::{Row, params};

use crate::domain::{NewSource, Source, SourceKind, SourcePatch};
use crate::store::StoreError;

const SOURCE_COLUMNS: &str = "id, scope_id, name, kind, url, config, created_at, updated_at";

/// Columns are decoded as text here and interpreted afterwards, so that a
/// bad kind or config is an `Internal` error rather than a rusqlite one.
struct RawSource {
    id: i64,
    scope_id: i64,
    name: String,
    kind: String,
    url: String,
    config: String,
    created_at: String,
    updated_at: String,
}

fn raw_from_row(row: &Row<'_>) -> rusqlite::Result<RawSource> {
    Ok(RawSource {
        id: row.get("id")?,
        scope_id: row.get("scope_id")?,
        name: row.get("name")?,
        kind: row.get("kind")?,
        url: row.get("url")?,
        config: row.get("config")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

impl RawSource {
    fn into_source(self) -> Result<Source, StoreError> {
        Ok(Source {
            id: self.id,
            scope_id: self.scope_id,
            name: self.name,
            kind: self
                .kind
                .parse::<SourceKind>()
                .map_err(|_| StoreError::Internal("unknown source kind in the database".into()))?,
            url: self.url,
            config: serde_json::from_str(&self.config).map_err(|_| {
                StoreError::Internal("malformed source config in the database".into())
            })?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn config_text(config: &serde_json::Value) -> String {
    // Serialising a `Value` cannot fail: its keys are always strings.
    config.to_string()
}

pub(crate) fn list(db: &rusqlite::Connection, scope_id: i64) -> Result<Vec<Source>, StoreError> {
    let mut stmt = db.prepare_cached(&format!(
        "SELECT {SOURCE_COLUMNS} FROM sources WHERE scope_id = ?1 ORDER BY id"
    ))?;
    let raws = stmt
        .query_map([scope_id], raw_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    raws.into_iter().map(RawSource::into_source).collect()
}

pub(crate) fn get(db: &rusqlite::Connection, scope_id: i64, id: i64) -> Result<Source, StoreError> {
    db.prepare_cached(&format!(
        "SELECT {SOURCE_COLUMNS} FROM sources WHERE id = ?1 AND scope_id = ?2"
    ))?
    .query_row([id, scope_id], raw_from_row)?
    .into_source()
}

pub(crate) fn create(
    db: &rusqlite::Connection,
    scope_id: i64,
    new: &NewSource,
) -> Result<Source, StoreError> {
    new.validate()?;
    db.prepare_cached(&format!(
        "INSERT INTO sources (scope_id, name, kind, url, config) \
         VALUES (?1, ?2, ?3, ?4, ?5) RETURNING {SOURCE_COLUMNS}"
    ))?
    .query_row(
        params![
            scope_id,
            new.name,
            new.kind.as_str(),
            new.url,
            config_text(&new.config)
        ],
        raw_from_row,
    )?
    .into_source()
}

pub(crate) fn update(
    db: &rusqlite::Connection,
    scope_id: i64,
    id: i64,
    patch: &SourcePatch,
) -> Result<Source, StoreError> {
    patch.validate()?;
    if patch.is_empty() {
        return get(db, scope_id, id);
    }
    db.prepare_cached(&format!(
        "UPDATE sources SET name = COALESCE(?3, name), kind = COALESCE(?4, kind), \
         url = COALESCE(?5, url), config = COALESCE(?6, config), \
         updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
         WHERE id = ?1 AND scope_id = ?2 RETURNING {SOURCE_COLUMNS}"
    ))?
    .query_row(
        params![
            id,
            scope_id,
            patch.name,
            patch.kind.map(SourceKind::as_str),
            patch.url,
            patch.config.as_ref().map(config_text)
        ],
        raw_from_row,
    )?
    .into_source()
}

pub(crate) fn delete(db: &rusqlite::Connection, scope_id: i64, id: i64) -> Result<(), StoreError> {
    let deleted = db
        .prepare_cached("DELETE FROM sources WHERE id = ?1 AND scope_id = ?2")?
        .execute([id, scope_id])?;
    if deleted == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
