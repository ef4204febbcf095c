use std::time::Duration;

use huddle_testkit::SipUa;

use super::{answered, server};

#[tokio::test]
async fn sigterm_refuses_new_calls_and_ends_live_ones_after_grace() {
    tokio::time::timeout(Duration::from_secs(40), async {
        let mut srv = server("", 100);
        let (mut ua, mut rtp, media) = answered(srv.sip, "echo").await;
        rtp.talk(media, 1000.0, Duration::from_millis(300)).await;
        srv.sigterm();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut late = SipUa::udp(srv.sip).await;
        let refused = late
            .invite("echo", &SipUa::sdp(4010, &[0]))
            .await
            .expect("an answer");
        assert_eq!(refused.status(), 503);
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
