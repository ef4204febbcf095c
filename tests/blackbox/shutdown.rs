use std::time::{Duration, Instant};

use huddle_testkit::SipUa;

use super::{answered, server};

#[tokio::test]
async fn sigterm_refuses_new_calls_and_ends_live_ones_after_grace() {
    tokio::time::timeout(Duration::from_secs(40), async {
        let mut srv = server("", 100);
        let (mut ua, mut rtp, media) = answered(srv.sip, "echo").await;
        rtp.talk(media, 1000.0, Duration::from_millis(300)).await;
        srv.sigterm();
        // The server takes the signal asynchronously: until it does, a new call may still be
        // answered (and is hung up again); within a deadline new calls get 503.
        let deadline = Instant::now() + Duration::from_secs(2);
        let refused = loop {
            let mut late = SipUa::udp(srv.sip).await;
            let answer = late
                .invite("echo", &SipUa::sdp(4010, &[0]))
                .await
                .expect("an answer");
            if answer.status() != 200 || Instant::now() >= deadline {
                break answer;
            }
            late.ack().await;
            late.bye().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(refused.status(), 503, "{}", refused.start);
        let bye = ua
            .recv_until(Duration::from_secs(5), |m| m.start.starts_with("BYE "))
            .await
            .expect("BYE within the grace period (2 s)");
        ua.reply_ok(&bye).await;
        let code = tokio::task::spawn_blocking(move || srv.wait_exit(Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(code, Some(0), "clean exit");
    })
    .await
    .expect("timed out");
}
