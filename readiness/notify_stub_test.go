package readiness_test

func notifySendHelper() int { return 2 }
