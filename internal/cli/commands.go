package cli

// commands returns every command, in the order that help and docs/CLI.md
// list them. A new command is added here, and nowhere else.
func commands() []*command {
	return []*command{
		closeCmd(),
		completionCmd(),
		consoleTokenCmd(),
		cpCmd(),
		execCmd(),
		joinCmd(),
		keygenCmd(),
		killCmd(),
		lsCmd(),
		mkJoinCmd(),
		mkLeaveCmd(),
		mkchanCmd(),
		mkdkrCmd(),
		mkdnsCmd(),
		mkprocCmd(),
		peekCmd(),
		recvCmd(),
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
