//! What every listener holds a client to: a cap on connections, and deadlines for a request's
//! head and its body (a client trickling either, slowloris, is cut off).

mod support;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::TestNode;

/// Long enough for any honest client on a loaded machine, short enough for a test.
const CUT_OFF_WITHIN: Duration = Duration::from_secs(15);

async fn connect(node: &TestNode) -> TcpStream {
    TcpStream::connect(node.url.trim_start_matches("http://"))
        .await
        .expect("connect")
}

/// Reads until the node closes the connection; what it said before closing.
async fn until_closed(stream: &mut (impl AsyncReadExt + Unpin)) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(CUT_OFF_WITHIN, stream.read_to_end(&mut got))
        .await
        .expect("the node kept the connection open")
        .ok();
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_cut_off_on_the_first_request_and_later_ones() {
    let node = TestNode::start_with(|c| c.header_timeout_seconds = 1).await;

    // The first request's head, never finished.
    let mut first = connect(&node).await;
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: node\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    assert_eq!(
        until_closed(&mut first).await,
        "",
        "no answer to half a head"
    );

    // A kept-alive connection: a whole request is answered, then the next head trickles.
    let mut second = connect(&node).await;
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: node\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 12];
    second.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    second
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    until_closed(&mut second).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_slower_than_its_deadline_is_refused_and_the_connection_closed() {
    let node = TestNode::start_with(|c| c.body_timeout_seconds = 1).await;
    let (mut reader, mut slow) = connect(&node).await.into_split();
    // A sign-in whose body promises 200 bytes and sends 10, then a byte now and then: each
    // byte arrives well within any per-chunk timeout, the whole never within the deadline.
    slow.write_all(
        b"POST /api/v1/sessions HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"usernam",
    )
    .await
    .unwrap();
    let drip = async {
        for _ in 0..100 {
            if slow.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let (said, ()) = tokio::join!(until_closed(&mut reader), drip);
    assert!(
        said.is_empty() || said.starts_with("HTTP/1.1 4"),
        "the node answered {said:?}"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let node = TestNode::start_with(|c| {
        c.max_connections = 2;
        c.header_timeout_seconds = 60;
    })
    .await;
    // Two connections take the node's two places and send nothing.
    let idle_a = connect(&node).await;
    let idle_b = connect(&node).await;
    let url = format!("{}/healthz", node.url);
    let http = support::http();
    let third = tokio::spawn({
        let http = http.clone();
        async move { http.get(url).send().await.map(|r| r.status()) }
    });
    // Not served while both places are taken (a window to observe that nothing happens, not
    // a wait for something to)...
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served beyond the cap"
    );
    // ...and served as soon as one is given back.
    drop(idle_a);
    let status = tokio::time::timeout(CUT_OFF_WITHIN, third)
        .await
        .expect("the waiting connection was never served")
        .unwrap()
        .expect("request");
    assert_eq!(status, 200);
    drop(idle_b);
    node.stop().await;
}
