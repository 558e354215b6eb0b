//! provision-sqlx over real HTTP on loopback, against a real PostgreSQL
//! (a throwaway cluster, a fresh database per test) and real SQLite files.
//! Every case is written once (`cases`) and run on both databases.

mod backend;
mod cases;
mod server;

mod postgres {
    use super::cases;
    use sqlx::Postgres;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commits_before_the_answer() {
        cases::commits_before_the_answer::<Postgres>().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rolls_back_on_an_error_status() {
        cases::rolls_back_on_an_error_status::<Postgres>().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rolls_back_on_a_panic() {
        cases::rolls_back_on_a_panic::<Postgres>().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rolls_back_when_the_client_leaves() {
        cases::rolls_back_when_the_client_leaves::<Postgres>().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_answers_conflict() {
        cases::a_failed_commit_answers_conflict::<Postgres>().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streaming_body_holding_the_tx_does_not_skip_the_commit() {
        cases::streaming_body_holding_the_tx_does_not_skip_the_commit::<Postgres>().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_task_holding_the_tx_does_not_skip_the_commit() {
        cases::a_task_holding_the_tx_does_not_skip_the_commit::<Postgres>().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_query_after_the_commit_is_refused() {
        cases::a_query_after_the_commit_is_refused::<Postgres>().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_each_commit_their_own() {
        cases::concurrent_requests_each_commit_their_own::<Postgres>().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conn_is_leased_only_when_asked_and_returned() {
        cases::conn_is_leased_only_when_asked_and_returned::<Postgres>().await;
    }
}

mod sqlite {
    use super::cases;
    use sqlx::Sqlite;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tx_holds_the_write_lock_from_its_begin() {
        cases::sqlite_tx_holds_the_write_lock_from_its_begin().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commits_before_the_answer() {
        cases::commits_before_the_answer::<Sqlite>().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rolls_back_on_an_error_status() {
        cases::rolls_back_on_an_error_status::<Sqlite>().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rolls_back_on_a_panic() {
        cases::rolls_back_on_a_panic::<Sqlite>().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rolls_back_when_the_client_leaves() {
        cases::rolls_back_when_the_client_leaves::<Sqlite>().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_answers_conflict() {
        cases::a_failed_commit_answers_conflict::<Sqlite>().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streaming_body_holding_the_tx_does_not_skip_the_commit() {
        cases::streaming_body_holding_the_tx_does_not_skip_the_commit::<Sqlite>().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_task_holding_the_tx_does_not_skip_the_commit() {
        cases::a_task_holding_the_tx_does_not_skip_the_commit::<Sqlite>().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_query_after_the_commit_is_refused() {
        cases::a_query_after_the_commit_is_refused::<Sqlite>().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_each_commit_their_own() {
        cases::concurrent_requests_each_commit_their_own::<Sqlite>().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conn_is_leased_only_when_asked_and_returned() {
        cases::conn_is_leased_only_when_asked_and_returned::<Sqlite>().await;
    }
}
