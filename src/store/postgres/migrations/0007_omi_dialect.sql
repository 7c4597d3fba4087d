-- Conversations created through the Omi-compatible Developer API (SQLite's 0007 in PostgreSQL terms).

-- The text of a create-from-text request. No language model turns it into a title, overview and
-- transcript here, so it is kept as received (Omi keeps the request as `external_data`).
CREATE TABLE conversation_source_texts (
    uid TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    text TEXT NOT NULL,
    text_source TEXT NOT NULL,
    text_source_spec TEXT,
    PRIMARY KEY (uid, conversation_id)
);

-- A client's id for a conversation it creates: a retry with the same id returns the first result,
-- also after the conversation was deleted (then its status is `deleted`). The primary key makes this
-- hold however many instances race.
CREATE TABLE conversation_client_sessions (
    uid TEXT NOT NULL,
    client_session_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    deleted_at BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (uid, client_session_id)
);
CREATE INDEX conversation_client_sessions_by_conversation
    ON conversation_client_sessions (uid, conversation_id);

CREATE INDEX tasks_by_conversation ON tasks (uid, conversation_id);
