// A handler asks for a service that nothing provides.
use provision::Dep;

struct Mailer;

async fn send_welcome(_mailer: Dep<Mailer>) -> &'static str {
    "sent"
}

fn main() {
    let _ = send_welcome;
}
