package cli

// commands returns every command, in the order that help and docs/CLI.md
// list them. Each is defined in the file of its group (peekCmd in peek.go,
// runCmd in run.go, ...); adding one to this list is what makes it exist.
func commands() []*command {
	return []*command{
		closeCmd(),
		completionCmd(),
		consoleTokenCmd(),
		cpCmd(),
		execCmd(),
		graveyardCmd(),
		joinCmd(),
		keygenCmd(),
		keyringCmd(),
		credCmd(),
		killCmd(),
		logCmd(),
		lsCmd(),
		mkJoinCmd(),
		mkLeaveCmd(),
		mkchanCmd(),
		mkdkrCmd(),
		mkdnsCmd(),
		mkprocCmd(),
		peekCmd(),
		pprofCmd(),
		recvCmd(),
		respawnCmd(),
		revokeCmd(),
		runCmd(),
		scrubCmd(),
		sendCmd(),
		setCmd(),
		signalCmd(),
		startCmd(),
		stderrCmd(),
		stdinCmd(),
		stdoutCmd(),
		stkCmd(),
		suicideCmd(),
		unsetCmd(),
		versionCmd(),
		waitCmd(),
		waitallCmd(),
	}
}

// lookup returns the command called name, or nil if there is none.
func lookup(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}
