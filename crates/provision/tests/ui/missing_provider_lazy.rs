// A handler asks lazily for a service that nothing provides: refused the
// same way as `Dep<T>`.
use provision::Lazy;

struct Mailer;

async fn send_welcome(_mailer: Lazy<Mailer>) -> &'static str {
    "sent"
}

fn main() {
    let _ = send_welcome;
}
